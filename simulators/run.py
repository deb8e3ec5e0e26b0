"""One fleet run: start the store and the server, drive the agents tick by tick, inject faults, check invariants."""

from __future__ import annotations

import collections
import datetime as dt
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Role

from .agents import DispatcherAgent, EngineerAgent
from .invariants import DeviceView, check_all, projections_verify_command
from .scenario import Scenario
from .target import RunOptions, RunSetupError, ServerUnreachable, Target, start_target, stop_target
from .telemetry import SimulatedClock, Telemetry

__all__ = ["RunOptions", "RunSetupError", "ServerUnreachable", "run"]

log = structlog.get_logger("csdp.fleet")

SETTLE_ROUNDS = 10


def simulation_start(scenario: Scenario) -> dt.datetime:
    """Return a midnight UTC far enough back that no simulated time, even after `max_ticks` and skew, is in the future.

    The server would clamp a future `occurred_at`, which is not what a scenario means to test.
    """
    fleet = scenario.fleet
    longest_minutes = fleet.max_ticks * fleet.minutes_per_tick + scenario.clock.max_skew_minutes
    days_back = math.ceil(longest_minutes / (24 * 60)) + 1
    first_day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days_back)
    return dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.timezone.utc)


def run(options: RunOptions) -> tuple[dict[str, Any], Telemetry]:
    scenario = options.scenario
    rng = random.Random(scenario.seed)
    workdir = Path(tempfile.mkdtemp(prefix="csdp-fleet-"))
    telemetry = Telemetry(SimulatedClock(simulation_start(scenario), scenario.fleet.minutes_per_tick))
    succeeded = False
    started = False
    interrupted = False
    target: Target | None = None
    log.info("fleet_run_started", scenario=scenario.name, seed=scenario.seed, store=scenario.store, workdir=str(workdir))
    try:
        target = start_target(options, workdir)
        started = True
        summary = _drive(options, target, workdir, rng, telemetry)
        succeeded = summary["ok"]
        return summary, telemetry
    except RunSetupError:
        started = False
        raise
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM abandons the run, so its files are removed unless --keep-files is given.
        interrupted = True
        raise
    finally:
        # The files of a run that started and then failed are kept for inspection.
        keep = options.keep_files or (started and not succeeded and not interrupted)
        if target is not None:
            stop_target(target, keep)
        if keep:
            print(f"files of this run: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        log.info("fleet_run_stopped", scenario=scenario.name, seed=scenario.seed, ok=succeeded)


def _http(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _check_access(base_url: str, token: str) -> None:
    """Stop before the run when the server rejects the simulator's tokens."""
    try:
        with _http(base_url, token) as client:
            response = client.get("/v1/work-orders", params={"limit": 1})
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"the server at {base_url} cannot be reached: {exc}") from None
    if response.status_code != 200:
        raise RunSetupError(
            f"the server at {base_url} returned HTTP {response.status_code} to the simulator's token: "
            f"{response.text[:300]}"
        )


def _drive(options: RunOptions, target: Target, workdir: Path, rng: random.Random, telemetry: Telemetry) -> dict[str, Any]:
    scenario = options.scenario
    settings = Settings(var_dir=target.var_dir)
    started = time.monotonic()
    engineer_ids = [f"e-{index:03d}" for index in range(1, scenario.fleet.engineers + 1)]
    tokens = {engineer_id: mint_dev_token(settings, subject=engineer_id, role=Role.ENGINEER) for engineer_id in engineer_ids}
    dispatcher_token = mint_dev_token(settings, subject="dispatcher-1", role=Role.DISPATCHER)
    _check_access(target.base_url, dispatcher_token)

    engineers = [
        EngineerAgent(engineer_id, workdir, target.base_url, tokens[engineer_id], random.Random(rng.random()), scenario, telemetry)
        for engineer_id in engineer_ids
    ]
    dispatcher = DispatcherAgent(
        workdir,
        target.base_url,
        dispatcher_token,
        engineer_ids,
        random.Random(rng.random()),
        scenario,
        telemetry,
        order_prefix=options.order_prefix,
    )
    agents = [*engineers, dispatcher]
    try:
        ticks = _simulate(scenario, target, dispatcher, engineers, telemetry, options.show_progress)
        _settle(dispatcher, engineers)

        views = [DeviceView(agent.name, agent.client, _http(target.base_url, tokens[agent.name])) for agent in engineers]
        views.append(DeviceView(dispatcher.name, dispatcher.client, _http(target.base_url, dispatcher_token)))
        admin_token = mint_dev_token(settings, subject="fleet-auditor", role=Role.ADMIN)
        with _http(target.base_url, admin_token) as office:
            findings = check_all(
                views,
                {agent.engineer_id: agent.client for agent in engineers},
                office,
                projections_verify_command(target.environment()),
                own_order_prefix=options.order_prefix if options.server_url else None,
            )
        for view in views:
            view.http.close()

        decisions: collections.Counter[str] = collections.Counter()
        for agent in agents:
            for entry in agent.client.outbox():
                if entry.decision is not None:
                    decisions[f"{entry.decision.status.value}:{entry.decision.reason_code.value}"] += 1
        counts = [agent.network.counts for agent in agents]
        return {
            "scenario": scenario.name,
            "seed": scenario.seed,
            "store": target.store_label,
            "engineers": scenario.fleet.engineers,
            "orders": scenario.fleet.orders,
            "ticks": ticks,
            "seconds": round(time.monotonic() - started, 1),
            "recorded_events": sum(agent.recorded for agent in agents),
            "lost_responses": sum(count.lost_responses for count in counts),
            "connection_resets": sum(count.connection_resets for count in counts),
            "injected_503": sum(count.injected_503 for count in counts),
            "server_kills": len(telemetry.server_outages),
            "postgres_restarts": len(telemetry.postgres_restarts),
            "run_token": options.run_token,
            "invariants": findings.invariants,
            "violations": findings.violations,
            "not_checked": findings.not_checked,
            "decisions": dict(sorted(decisions.items())),
            "ok": all(holds is not False for holds in findings.invariants.values()),
        }
    finally:
        for agent in agents:
            agent.client.close()


def _simulate(
    scenario: Scenario,
    target: Target,
    dispatcher: DispatcherAgent,
    engineers: list[EngineerAgent],
    telemetry: Telemetry,
    show_progress: bool,
) -> int:
    progress = Progress(
        TextColumn("[bold]fleet[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders closed or cancelled"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show_progress,
        transient=True,
    )
    faults = scenario.faults
    restart_at: int | None = None
    clock = telemetry.clock
    with progress:
        task = progress.add_task("fleet", total=scenario.fleet.orders)
        while clock.tick < scenario.fleet.max_ticks and not dispatcher.done:
            clock.tick += 1
            if clock.tick in faults.server_kill_ticks and target.server is not None and restart_at is None:
                log.warning("fault_server_killed", tick=clock.tick, pid=target.server.process.pid if target.server.process else None)
                target.server.kill()
                restart_at = clock.tick + faults.server_down_ticks
            if restart_at is not None and clock.tick >= restart_at:
                _restart_server(target, telemetry, killed_at=restart_at - faults.server_down_ticks)
                restart_at = None
            if clock.tick in faults.postgres_restart_ticks and target.cluster is not None:
                log.warning("fault_postgres_restarted", tick=clock.tick, port=target.cluster.port)
                target.cluster.restart()
                telemetry.postgres_restarts.append(clock.tick)

            dispatcher.tick()
            for agent in engineers:
                agent.tick()
            for agent in [*engineers, dispatcher]:
                telemetry.sample_queue(agent.name, agent.client.pending_count())
            finished = sum(
                state.status.value in ("closed", "cancelled") for state in dispatcher.client.confirmed_work_orders().values()
            )
            progress.update(task, completed=finished)
    if restart_at is not None:
        _restart_server(target, telemetry, killed_at=restart_at - faults.server_down_ticks)
    return clock.tick


def _restart_server(target: Target, telemetry: Telemetry, killed_at: int) -> None:
    assert target.server is not None
    target.server.start()
    telemetry.server_outages.append((killed_at, telemetry.clock.tick))
    log.info("fault_server_restarted", tick=telemetry.clock.tick, port=target.server.port)


def _settle(dispatcher: DispatcherAgent, engineers: list[EngineerAgent]) -> None:
    """Bring every tablet online and sync until no event is pending.

    The faults stay on for the first rounds, then every network is calmed so
    the last rounds, and the final pull that brings each tablet up to date,
    cannot fail on an injected fault.
    """
    agents = [*engineers, dispatcher]
    for agent in engineers:
        agent.go_online()
    for round_number in range(2 * SETTLE_ROUNDS):
        if round_number == SETTLE_ROUNDS:
            for agent in agents:
                agent.network.calm()
        for agent in agents:
            agent.sync()
        if sum(agent.client.pending_count() for agent in agents) == 0:
            break
    for agent in agents:
        agent.network.calm()
        agent.sync()
