"""Fleet simulator: engineers with offline tablets, a dispatcher, lost responses, invariant checks.

    python -m simulators.fleet --seed 1
    python -m simulators.fleet --engineers 20 --orders 200 --json

Without `--server-url` it starts `csdp serve` on a free loopback port over a
fresh SQLite file. Exit status 1 when any invariant is violated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.security import mint_dev_token
from server.config import Settings
from shared_schema import Role

from .agents import Behaviour, DispatcherAgent, EngineerAgent
from .invariants import Device, check_all
from .server_process import ServerProcess


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    # The fleet and its behaviour.
    parser.add_argument("--seed", type=int, default=1, help="random seed; the same seed repeats the same run")
    parser.add_argument("--engineers", type=_positive, default=8, help="number of engineer tablets")
    parser.add_argument("--orders", type=_positive, default=60, help="number of work orders to create")
    parser.add_argument("--max-ticks", type=_positive, default=3000, help="upper bound on simulation steps")
    parser.add_argument("--offline-probability", type=_probability, default=0.05, help="chance per tick that a tablet goes offline")
    parser.add_argument("--max-offline-ticks", type=_positive, default=12, help="maximum length of an offline window, in ticks")
    parser.add_argument("--lost-response-rate", type=_probability, default=0.05, help="share of POSTs whose response is lost after commit")
    parser.add_argument("--reassign-probability", type=_probability, default=0.03, help="chance per tick and open order of a reassignment")
    parser.add_argument("--cancel-probability", type=_probability, default=0.01, help="chance per tick and open order of a cancellation")

    # Where the server runs.
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CSDP_DATABASE_URL") or None,
        help="PostgreSQL database for the started server, e.g. postgresql://postgres@127.0.0.1:5432/csdp, "
        "taken from CSDP_DATABASE_URL when set; without it the server uses a fresh SQLite file. The run uses a new "
        "schema in that database and drops it at the end, unless the run fails or --keep-files is set",
    )
    parser.add_argument("--server-url", help="use a running server instead of starting one; needs --var-dir of that server")
    parser.add_argument("--var-dir", type=Path, help="server folder with the development key; a new temporary folder when not given")

    # Output.
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument("--keep-files", action="store_true", help="keep the tablets' SQLite files, the server folder and the PostgreSQL schema")

    args = parser.parse_args(argv)
    if args.server_url:
        if args.var_dir is None:
            parser.error("--server-url needs --var-dir, the folder with that server's development key")
        if not (args.var_dir / "dev-jwt-key").is_file():
            parser.error(f"--var-dir {args.var_dir} has no dev-jwt-key; give the CSDP_VAR_DIR of the server at --server-url")
    return args


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {raw}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {raw}")
    return value


def _probability(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {raw}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {raw}")
    return value


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="csdp-fleet-"))
    var_dir = args.var_dir or workdir / "server"
    behaviour = Behaviour(
        offline_probability=args.offline_probability,
        max_offline_ticks=args.max_offline_ticks,
        lost_response_rate=args.lost_response_rate,
        reassign_probability=args.reassign_probability,
        cancel_probability=args.cancel_probability,
    )
    schema = None
    database_url = None
    if args.database_url and not args.server_url:
        schema = f"fleet_{args.seed}_{uuid.uuid4().hex[:8]}"
        try:
            database_url = create_schema(args.database_url, schema)
        except SystemExit:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    server = None if args.server_url else ServerProcess(var_dir, database_url=database_url)
    if server is not None:
        try:
            server.start()
        except BaseException:
            if schema is not None:
                drop_schema(args.database_url, schema)
            raise
    base_url = args.server_url or server.base_url  # type: ignore[union-attr]
    settings = Settings(var_dir=var_dir)
    started = time.monotonic()
    succeeded = False
    try:
        engineer_ids = [f"e-{index:03d}" for index in range(1, args.engineers + 1)]
        tokens = {engineer_id: mint_dev_token(settings, subject=engineer_id, role=Role.ENGINEER) for engineer_id in engineer_ids}
        dispatcher_token = mint_dev_token(settings, subject="dispatcher-1", role=Role.DISPATCHER)
        _check_access(base_url, dispatcher_token)
        engineers = [
            EngineerAgent(engineer_id, workdir, base_url, tokens[engineer_id], random.Random(rng.random()), behaviour)
            for engineer_id in engineer_ids
        ]
        dispatcher = DispatcherAgent(
            workdir, base_url, dispatcher_token, engineer_ids, args.orders, random.Random(rng.random()), behaviour
        )

        ticks = _simulate(dispatcher, engineers, args, show_progress=not args.json)
        _settle(dispatcher, engineers)

        devices = [
            Device(agent.engineer_id, agent.client, _http(base_url, tokens[agent.engineer_id])) for agent in engineers
        ]
        devices.append(Device("dispatcher-1", dispatcher.client, _http(base_url, dispatcher_token)))
        office = _http(base_url, dispatcher_token)
        findings = check_all(devices, {agent.engineer_id: agent.client for agent in engineers}, office)

        decisions: collections.Counter[str] = collections.Counter()
        for device in devices:
            for entry in device.client.outbox():
                if entry.decision is not None:
                    decisions[f"{entry.decision.status.value}:{entry.decision.reason_code.value}"] += 1
        if args.server_url:
            store = "external server"
        elif database_url:
            store = "postgresql"
        else:
            store = "sqlite"
        summary = {
            "seed": args.seed,
            "store": store,
            "engineers": args.engineers,
            "orders": args.orders,
            "ticks": ticks,
            "seconds": round(time.monotonic() - started, 1),
            "recorded_events": sum(agent.recorded for agent in engineers) + dispatcher.recorded,
            "lost_responses": sum(agent.network.lost_responses for agent in [*engineers, dispatcher]),
            "invariants": findings.invariants,
            "violations": findings.violations,
            "decisions": dict(sorted(decisions.items())),
            "ok": all(findings.invariants.values()),
        }
        for device in devices:
            device.http.close()
            device.client.close()
        office.close()
        succeeded = summary["ok"]
        return summary
    finally:
        if server is not None:
            server.stop()
        keep = args.keep_files or not succeeded
        if schema is not None and not keep:
            drop_schema(args.database_url, schema)
        elif schema is not None:
            print(f"schema of this run: {schema} in {args.database_url}", file=sys.stderr)
        if keep:
            print(f"files of this run: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def create_schema(database_url: str, schema: str) -> str:
    """Create a schema for one run and return the URL that selects it."""
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit(f"--database-url {database_url!r} is invalid: expected postgresql://USER@HOST:PORT/DATABASE")
    try:
        asyncio.run(_execute(database_url, f"CREATE SCHEMA {schema}"))
    except (OSError, ValueError, asyncpg.PostgresError) as exc:
        raise SystemExit(f"--database-url {database_url!r} is not usable: {exc}") from None
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}search_path={schema}"


def drop_schema(database_url: str, schema: str) -> None:
    asyncio.run(_execute(database_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


async def _execute(database_url: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _check_access(base_url: str, token: str) -> None:
    """Stop before the run when the server rejects the simulator's tokens."""
    with _http(base_url, token) as client:
        response = client.get("/v1/work-orders", params={"limit": 1})
    if response.status_code != 200:
        raise SystemExit(
            f"the server at {base_url} returned HTTP {response.status_code} to the simulator's token: "
            f"{response.text[:300]}"
        )


def _http(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _simulate(dispatcher: DispatcherAgent, engineers: list[EngineerAgent], args: argparse.Namespace, show_progress: bool) -> int:
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
    tick = 0
    with progress:
        task = progress.add_task("fleet", total=args.orders)
        while tick < args.max_ticks and not dispatcher.done:
            tick += 1
            dispatcher.tick()
            for agent in engineers:
                agent.tick()
            finished = sum(
                state.status.value in ("closed", "cancelled") for state in dispatcher.client.confirmed_work_orders().values()
            )
            progress.update(task, completed=finished)
    return tick


def _settle(dispatcher: DispatcherAgent, engineers: list[EngineerAgent]) -> None:
    """Bring every tablet online and sync until no event is pending; faults stay on."""
    for agent in engineers:
        agent.go_online()
    for _ in range(10):
        for agent in engineers:
            agent.sync()
        try:
            dispatcher.client.sync()
        except Exception:  # noqa: BLE001 - retried in the next round
            pass
        pending = dispatcher.client.pending_count() + sum(agent.client.pending_count() for agent in engineers)
        if pending == 0:
            break
    # A last pull so every tablet has the final state of its orders.
    for agent in engineers:
        agent.network.lost_response_rate = 0
        agent.sync()


def print_summary(summary: dict) -> None:
    console = Console()
    table = Table(
        title=f"Invariants (seed {summary['seed']}, {summary['engineers']} engineers, "
        f"{summary['orders']} orders, {summary['store']})"
    )
    table.add_column("invariant")
    table.add_column("holds")
    for name, holds in summary["invariants"].items():
        table.add_row(name, "[green]yes[/green]" if holds else "[red]NO[/red]")
    console.print(table)
    decisions = Table(title="Decisions by status and reason code")
    decisions.add_column("status:reason_code")
    decisions.add_column("count", justify="right")
    for key, count in summary["decisions"].items():
        decisions.add_row(key, str(count))
    console.print(decisions)
    console.print(
        f"{summary['recorded_events']} events recorded in {summary['ticks']} ticks, "
        f"{summary['lost_responses']} responses lost, {summary['seconds']} s"
    )
    for violation in summary["violations"]:
        console.print(f"[red]violation[/red] {violation}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(summary)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
