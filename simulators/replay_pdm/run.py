"""One replay: start the server, register the fleet, run the simulated clock, then check and compare."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Actor, Role

from ..faults import FlakyNetwork, NetworkFaults
from ..target import create_schema, drop_schema
from ..invariants import DeviceView, check_all, projections_verify_command
from ..server_process import ServerProcess
from .agents import ReplayBehaviour, ReplayDispatcher, ReplayEngineer, sdk_client
from .calendars import shift_of
from .catalog import catalog_commands, register_catalog
from .compare import GROUPINGS, comparison_rows, fetch_kpi, product_figures, wait_for_projector
from .dataset import FleetLog
from .expected import expected_figures
from .plans import OrderPlan, order_plans

log = structlog.get_logger("csdp.replay_pdm")
HOUR = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class ReplayOptions:
    """Everything one replay needs; `__main__` builds it from the command line."""

    log: FleetLog
    window_start: dt.datetime
    window_end: dt.datetime
    seed: int = 1
    engineers: int = 8
    errors: str = "notes"
    lead_days: int = 7
    drain_days: int = 14
    sla_clock_seconds: float = 0.0
    behaviour: ReplayBehaviour = dataclasses.field(default_factory=ReplayBehaviour)
    database_url: str | None = None
    keep_files: bool = False
    show_progress: bool = True


class EmptyWindowError(ValueError):
    """Error for a window that contains no failure and no replacement. It is an option error (exit status 2)."""


def plan_orders(options: ReplayOptions) -> list[OrderPlan]:
    """Return the orders of the window, raising EmptyWindowError when it contains none."""
    window_log = options.log.window(options.window_start, options.window_end)
    plans = order_plans(window_log, dt.timedelta(days=options.lead_days), faults=options.errors == "faults")
    if not plans:
        raise EmptyWindowError(
            f"the window {options.window_start.isoformat()} to {options.window_end.isoformat()} contains no "
            "failure and no replacement; choose a wider window with --from and --to or --months"
        )
    return plans


def replay(options: ReplayOptions) -> dict[str, Any]:
    """Run the replay and return its summary; `summary["ok"]` is False when an invariant or a figure differs."""
    plan_orders(options)
    workdir = Path(tempfile.mkdtemp(prefix="csdp-replay-pdm-"))
    var_dir = workdir / "server"
    schema = None
    database_url = None
    if options.database_url:
        schema = f"replay_pdm_{options.seed}_{uuid.uuid4().hex[:8]}"
        try:
            database_url = create_schema(options.database_url, schema)
        except SystemExit:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    # The SLA clock job evaluates open orders at the server's clock, years after the simulated one.
    # It would record every open order as breached, so it stays off unless the options turn it on.
    environment = {"CSDP_SLA_CLOCK_SECONDS": str(options.sla_clock_seconds)}
    server = ServerProcess(var_dir, database_url=database_url, environment=environment)
    succeeded = False
    interrupted = False
    started = time.monotonic()
    log.info("replay_started", seed=options.seed, window_start=options.window_start.isoformat(),
             window_end=options.window_end.isoformat(), store="postgresql" if database_url else "sqlite")
    try:
        server.start()
        store_environment = {**os.environ, "CSDP_VAR_DIR": str(var_dir)}
        store_environment.pop("CSDP_DATABASE_URL", None)
        if database_url:
            store_environment["CSDP_DATABASE_URL"] = database_url
        summary = _run(options, server.base_url, Settings(var_dir=var_dir), workdir, store_environment)
        summary["store"] = "postgresql" if database_url else "sqlite"
        summary["seconds"] = round(time.monotonic() - started, 1)
        succeeded = summary["ok"]
        log.info("replay_stopped", ok=succeeded, seconds=summary["seconds"])
        return summary
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM abandons the run, so its files are removed unless --keep-files is given.
        interrupted = True
        log.warning("replay_interrupted", workdir=str(workdir), keep_files=options.keep_files)
        raise
    finally:
        server.stop()
        keep = options.keep_files or (not succeeded and not interrupted)
        if schema is not None and options.database_url is not None:
            if keep:
                print(f"schema of this run: {schema} in {options.database_url}", file=sys.stderr)
            else:
                drop_schema(options.database_url, schema)
        if keep:
            print(f"files of this run: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _http(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _run(
    options: ReplayOptions, base_url: str, settings: Settings, workdir: Path, store_environment: dict[str, str]
) -> dict[str, Any]:
    rng = random.Random(options.seed)
    window_log = options.log.window(options.window_start, options.window_end)
    plans = plan_orders(options)
    clock_start = min(plans[0].report_time, options.window_start).replace(minute=0, second=0, microsecond=0)
    shifts = {f"e-{index + 1:02d}": shift_of(index) for index in range(options.engineers)}

    manager = _http(base_url, mint_dev_token(settings, subject="replay-manager", role=Role.MANAGER))
    register_catalog(manager, catalog_commands(options.log, shifts, clock_start))

    behaviour = options.behaviour
    plans_by_id = {plan.work_order_id: plan for plan in plans}
    engineers = []
    tokens = {}
    for engineer_id, shift in shifts.items():
        tokens[engineer_id] = mint_dev_token(settings, subject=engineer_id, role=Role.ENGINEER)
        network = FlakyNetwork(random.Random(rng.random()), NetworkFaults(lost_response_rate=behaviour.lost_response_rate))
        actor = Actor(subject=engineer_id, role=Role.ENGINEER, engineer_id=engineer_id)
        client = sdk_client(workdir / f"{engineer_id}.sqlite3", base_url, tokens[engineer_id],
                            f"tablet-{engineer_id}", actor, network)
        engineers.append(
            ReplayEngineer(engineer_id, shift, client, network, random.Random(rng.random()), behaviour,
                           plans_by_id, clock_start)
        )
    dispatcher_token = mint_dev_token(settings, subject="dispatcher-1", role=Role.DISPATCHER)
    dispatcher_network = FlakyNetwork(
        random.Random(rng.random()), NetworkFaults(lost_response_rate=behaviour.lost_response_rate)
    )
    dispatcher = ReplayDispatcher(
        sdk_client(workdir / "dispatcher.sqlite3", base_url, dispatcher_token, "dispatch-console",
                   Actor(subject="dispatcher-1", role=Role.DISPATCHER), dispatcher_network),
        dispatcher_network,
        random.Random(rng.random()),
        behaviour,
        shifts,
        plans,
        window_log.errors if options.errors == "notes" else [],
    )

    hours = _simulate(dispatcher, engineers, clock_start, options, len(plans))
    _settle(dispatcher, engineers, clock_start + hours * HOUR)

    devices = [DeviceView(agent.engineer_id, agent.client, _http(base_url, tokens[agent.engineer_id])) for agent in engineers]
    devices.append(DeviceView("dispatcher-1", dispatcher.client, _http(base_url, dispatcher_token)))
    # The replay's orders carry SLA contracts, so it compares figures from the file instead of the fleet's KPI check.
    findings = check_all(
        devices,
        {agent.engineer_id: agent.client for agent in engineers},
        manager,
        projections_verify_command(store_environment),
        compare_kpi=False,
    )

    wait_for_projector(manager, options.window_start, options.window_end)
    reports = {group_by: fetch_kpi(manager, options.window_start, options.window_end, group_by) for group_by in GROUPINGS}
    expected = expected_figures(window_log)
    rows = comparison_rows(product_figures(reports), expected)

    decisions: collections.Counter[str] = collections.Counter()
    for device in devices:
        for entry in device.client.outbox():
            if entry.decision is not None:
                decisions[f"{entry.decision.status.value}:{entry.decision.reason_code.value}"] += 1
    kinds = collections.Counter(plan.kind for plan in plans)
    unfinished = sorted(dispatcher.open)
    for device in devices:
        device.http.close()
        device.client.close()
    manager.close()

    figures_equal = all(row["equal"] for row in rows)
    return {
        "seed": options.seed,
        "window": {"from": options.window_start.isoformat(), "to": options.window_end.isoformat()},
        "engineers": options.engineers,
        "errors": options.errors,
        "orders": dict(sorted(kinds.items())),
        "simulated_hours": hours,
        "recorded_events": dispatcher.recorded + sum(agent.recorded for agent in engineers),
        "notes_from_errors": dispatcher.notes_recorded,
        "errors_without_open_order": dispatcher.errors_without_open_order,
        "reassignments": dispatcher.reassignments,
        "abandoned_jobs": sum(agent.abandoned_jobs for agent in engineers),
        "lost_responses": sum(agent.network.counts.lost_responses for agent in [*engineers, dispatcher]),
        "orders_not_closed": unfinished[:20],
        "invariants": findings.invariants,
        "violations": findings.violations,
        "decisions": dict(sorted(decisions.items())),
        "comparison": rows,
        "figures_equal": figures_equal,
        "kpi": {group_by: reports[group_by]["groups"] for group_by in ("asset_model", "day")},
        "ok": all(findings.invariants.values()) and figures_equal,
    }


def _simulate(
    dispatcher: ReplayDispatcher, engineers: list[ReplayEngineer], clock_start: dt.datetime,
    options: ReplayOptions, order_count: int,
) -> int:
    """Advance the simulated clock hour by hour until every order is closed or the drain time is over."""
    last_hour = options.window_end + dt.timedelta(days=options.drain_days)
    progress = Progress(
        TextColumn("[bold]replay[/bold] {task.fields[day]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("orders created"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not options.show_progress,
        transient=True,
    )
    hours = 0
    now = clock_start
    with progress:
        task = progress.add_task("replay", total=order_count, day="")
        while now < last_hour and not (now >= options.window_end and dispatcher.done):
            hours += 1
            now = clock_start + hours * HOUR
            dispatcher.tick(now)
            for agent in engineers:
                agent.tick(now)
            progress.update(task, completed=order_count - len(dispatcher.waiting), day=now.date().isoformat())
    return hours


def _settle(dispatcher: ReplayDispatcher, engineers: list[ReplayEngineer], now: dt.datetime) -> None:
    """Bring every tablet online and sync until nothing is pending, closing what was completed meanwhile."""
    for agent in engineers:
        agent.go_online()
    for _ in range(10):
        for agent in engineers:
            agent.sync()
        dispatcher.tick(now)
        pending = dispatcher.client.pending_count() + sum(agent.client.pending_count() for agent in engineers)
        if pending == 0:
            break
    # A last pull without lost responses, so every tablet has the final state of its orders.
    for agent in [*engineers, dispatcher]:
        agent.network.calm()
        agent.sync()
