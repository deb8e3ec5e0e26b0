"""Benchmark: drain an SDK outbox recorded offline against a local server.

One engineer's tablet records EVENTS events offline, spread over ORDERS work
orders assigned to it (one `accepted` per order, then notes and time logs).
The clock then measures `push()` (every pending event, in batches of
--batch-size) and the following `pull()` of the engineer's feed. The server
is a `csdp serve` subprocess on a free loopback port, over a fresh SQLite
file and, with --postgres-url, over a fresh PostgreSQL database too.

    .venv/bin/python -m simulators.bench_sdk_drain
    .venv/bin/python -m simulators.bench_sdk_drain --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

The script prints the figures, checks that every event was accepted, and
writes its own section of docs/benchmarks.md unless --no-markdown is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from client_sdk import SyncClient, engineer_actor
from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Role

from .server_process import ServerProcess
from .bench_doc import write_section

ENGINEER = "e-bench"
SECTION_HEADING = "## SDK outbox drain"
TARGET_SECONDS = 5.0


@dataclasses.dataclass
class DrainResult:
    store: str
    events: int
    batch_size: int
    record_seconds: float
    push_seconds: float
    pull_seconds: float
    pulled: int

    @property
    def drain_seconds(self) -> float:
        return self.push_seconds + self.pull_seconds


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Drain an offline SDK outbox against a local server.")
    parser.add_argument("--events", type=int, default=10_000, help="Events recorded offline (default 10000).")
    parser.add_argument("--orders", type=int, default=100, help="Work orders the events are spread over (default 100).")
    parser.add_argument("--batch-size", type=int, default=500, help="Events per push request, 1 to 500 (default 500).")
    parser.add_argument(
        "--postgres-url",
        help="Admin URL of a PostgreSQL server; the script creates a fresh database there and drops it at the end.",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="Skip the run on SQLite.")
    parser.add_argument("--no-markdown", action="store_true", help="Print the figures only; leave docs/benchmarks.md alone.")
    parser.add_argument("--markdown", type=Path, default=Path("docs/benchmarks.md"), help="Report file to update.")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error(f"--orders must be 1 or more, got {args.orders}")
    if args.events < args.orders:
        parser.error(f"--events ({args.events}) must be at least --orders ({args.orders}): each order starts with one event")
    if not 1 <= args.batch_size <= 500:
        parser.error(f"--batch-size must be 1 to 500, the server's default batch limit; got {args.batch_size}")
    if args.no_sqlite and not args.postgres_url:
        parser.error("--no-sqlite leaves nothing to run; add --postgres-url")
    return args


def plan_orders(dispatcher: httpx.Client, orders: list[str]) -> None:
    """Create and assign every order in batches, before the tablet's morning sync."""
    events = []
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    for work_order_id in orders:
        for event_type, payload, base_version in (
            ("created", {"title": "Benchmark order", "site_id": "site-bench"}, 0),
            ("assigned", {"engineer_id": ENGINEER}, 1),
        ):
            events.append(
                {
                    "client_event_id": str(uuid.uuid4()),
                    "work_order_id": work_order_id,
                    "type": event_type,
                    "payload": payload,
                    "occurred_at": now,
                    "base_version": base_version,
                    "device_id": "bench-console",
                }
            )
    for start in range(0, len(events), 500):
        response = dispatcher.post("/v1/events", json={"events": events[start : start + 500]})
        response.raise_for_status()
        statuses = {decision["status"] for decision in response.json()["decisions"]}
        if statuses != {"ACCEPTED"}:
            raise RuntimeError(f"planning the orders failed: {response.text[:500]}")


def run_drain(store: str, server: ServerProcess, var_dir: Path, workdir: Path, args: argparse.Namespace) -> DrainResult:
    settings = Settings(var_dir=var_dir)
    orders = [f"wo-bench-{number:04d}" for number in range(args.orders)]
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {mint_dev_token(settings, subject='d-bench', role=Role.DISPATCHER)}"},
        timeout=60,
    ) as dispatcher:
        plan_orders(dispatcher, orders)

    with SyncClient(
        workdir / f"tablet-{store}.sqlite3",
        server.base_url,
        mint_dev_token(settings, subject=ENGINEER, role=Role.ENGINEER),
        device_id=f"tablet-{ENGINEER}",
        actor=engineer_actor(ENGINEER),
        batch_size=args.batch_size,
        pull_page_size=5000,
    ) as tablet:
        tablet.sync()
        started = time.perf_counter()
        for number in range(args.events):
            work_order_id = orders[number % args.orders]
            if number < args.orders:
                tablet.record(work_order_id, "accepted")
            elif number % 2:
                tablet.record(work_order_id, "note_added", {"text": f"reading {number}"})
            else:
                tablet.record(work_order_id, "time_logged", {"minutes": 5})
        record_seconds = time.perf_counter() - started

        started = time.perf_counter()
        decisions = tablet.push()
        push_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pulled = tablet.pull()
        pull_seconds = time.perf_counter() - started

        accepted = sum(decision.status.value == "ACCEPTED" for decision in decisions)
        if accepted != args.events or tablet.pending_count():
            raise RuntimeError(
                f"{store}: {accepted} of {args.events} events accepted, {tablet.pending_count()} still pending"
            )
    return DrainResult(store, args.events, args.batch_size, record_seconds, push_seconds, pull_seconds, pulled)


def print_result(result: DrainResult) -> None:
    verdict = "within" if result.drain_seconds < TARGET_SECONDS else "OVER"
    print(
        f"{result.store}: recorded {result.events} events offline in {result.record_seconds:.2f} s;"
        f" push {result.push_seconds:.2f} s ({result.events / result.push_seconds:.0f} events/s),"
        f" pull of {result.pulled} events {result.pull_seconds:.2f} s;"
        f" drain {result.drain_seconds:.2f} s, {verdict} the {TARGET_SECONDS:.0f} s target"
    )


def markdown_section(results: list[DrainResult], command: str, orders: int, load: tuple[float, float]) -> str:
    lines = [
        SECTION_HEADING,
        "",
        "Generated by `simulators/bench_sdk_drain.py`. One engineer's tablet records the events offline, spread over"
        f" {orders} work orders assigned to it, then `push()` sends them in batches and `pull()` reads the engineer's feed"
        " back. Drain time is push plus pull, against a `csdp serve` subprocess on loopback (one uvicorn worker) on"
        f" the same machine. The target is a drain under {TARGET_SECONDS:.0f} s for 10,000 events.",
        "",
        f"- Machine: {os.cpu_count()} cores, CPython {platform.python_version()}, {platform.platform()}.",
        f"- One-minute load average: {load[0]:.2f} at the start and {load[1]:.2f} at the end; other processes on the"
        " machine slow every figure.",
        "- The tablet's file is SQLite in WAL mode with `synchronous=FULL`, one transaction per recorded event and per stored batch of decisions.",
        f"- Command: `{command}`",
        f"- Date: {dt.date.today().isoformat()}.",
        "",
        "| server store | events | batch | record offline (s) | push (s) | push events/s | pull (s) | drain (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append(
            f"| {result.store} | {result.events} | {result.batch_size} | {result.record_seconds:.2f}"
            f" | {result.push_seconds:.2f} | {result.events / result.push_seconds:.0f}"
            f" | {result.pull_seconds:.2f} | {result.drain_seconds:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results: list[DrainResult] = []
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="csdp-drain-") as temporary:
        workdir = Path(temporary)
        environment = {"CSDP_RATE_LIMIT_PER_MINUTE": "0", "CSDP_SLA_CLOCK_SECONDS": "0"}
        if not args.no_sqlite:
            var_dir = workdir / "sqlite"
            with ServerProcess(var_dir, environment=environment) as server:
                results.append(run_drain("SQLite", server, var_dir, workdir, args))
            print_result(results[-1])
        if args.postgres_url:
            from .bench_ingest import ScratchDatabases

            databases = ScratchDatabases(args.postgres_url)
            try:
                var_dir = workdir / "postgres"
                with ServerProcess(var_dir, database_url=databases.create("sdk_drain"), environment=environment) as server:
                    results.append(run_drain("PostgreSQL", server, var_dir, workdir, args))
            finally:
                databases.drop_all()
            print_result(results[-1])
    if not args.no_markdown:
        # The PostgreSQL URL may hold a password, so the report shows a placeholder.
        arguments = sys.argv[1:] if argv is None else argv
        displayed = ["URL" if item == args.postgres_url else item for item in arguments]
        command = " ".join(["python -m simulators.bench_sdk_drain", *displayed])
        write_section(args.markdown, markdown_section(results, command, args.orders, (load_at_start, os.getloadavg()[0])))
        print(f"wrote the section {SECTION_HEADING!r} of {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
