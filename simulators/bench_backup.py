"""Backup and restore throughput: SQLite -> file -> PostgreSQL and PostgreSQL -> file -> PostgreSQL.

    python -m simulators.bench_backup [--events 20000] [--orders 200] [--postgres-url URL]

The script fills a fresh SQLite store through `append_batch`, the ingestion
path, in batches of 500. It then times four steps: a backup of that store,
a restore of the file into a fresh PostgreSQL database (load and projection
rebuild), a backup of that database and a restore into a second one. Each
PostgreSQL database is created on the server of `--postgres-url` and dropped
at the end. The figures go to stdout, and the Markdown section between its
markers in `--output` is replaced (or appended when absent); the rest of the
file is left as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console

from server.backup.run import run_backup, run_restore
from server.config import Settings
from server.store import SQLiteStore
from shared_schema import Actor, ProposedEvent, Role
from .bench_doc import write_section

BATCH = 500


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    rows: int
    seconds: float
    file_bytes: int | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


async def fill_sqlite(path: Path, events: int, orders: int) -> None:
    """Record `orders` created orders and notes on them until `events` accepted events exist."""
    store = SQLiteStore(path)
    await store.open()
    actor = Actor(subject="bench-dispatcher", role=Role.DISPATCHER)
    now = dt.datetime.now(dt.timezone.utc)
    versions = {f"wo-{index}": 0 for index in range(orders)}
    proposals: list[ProposedEvent] = []
    for index in range(events):
        order = f"wo-{index % orders}"
        version = versions[order]
        kind = "created" if version == 0 else "note_added"
        payload = {"title": "Spindle alarm", "site_id": "site-1", "priority": "P3"} if version == 0 else {"text": f"note {index}"}
        proposals.append(
            ProposedEvent(
                client_event_id=uuid.uuid4(), work_order_id=order, type=kind, payload=payload,
                occurred_at=now, base_version=version, device_id="bench", correlation_id=f"bench-{index // BATCH}",
            )
        )
        versions[order] = version + 1
    try:
        for start in range(0, len(proposals), BATCH):
            await store.append_batch(actor, proposals[start : start + BATCH], now, dt.timedelta(minutes=5))
    finally:
        await store.close()


async def create_database(admin_url: str) -> str:
    name = f"csdp_bench_backup_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin_url: str, url: str) -> None:
    name = url.rpartition("/")[2]
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def timed(name: str, rows: int, work, file: Path | None = None) -> Step:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    return Step(name, rows, seconds, file.stat().st_size if file is not None else None)


def run(events: int, orders: int, admin_url: str, folder: Path) -> list[Step]:
    quiet = Console(quiet=True)
    source = Settings(var_dir=folder / "source")
    source.var_dir.mkdir(parents=True)
    asyncio.run(fill_sqlite(source.sqlite_path, events, orders))
    rows = 2 * events  # an event and its decision
    first_file, second_file = folder / "from-sqlite.jsonl.gz", folder / "from-postgres.jsonl.gz"
    first_url = asyncio.run(create_database(admin_url))
    second_url = asyncio.run(create_database(admin_url))
    first = Settings(var_dir=folder / "first", database_url=first_url)
    second = Settings(var_dir=folder / "second", database_url=second_url)
    try:
        return [
            timed("backup SQLite", rows, lambda: run_backup(source, first_file, 2000, quiet), first_file),
            timed("restore into PostgreSQL, with rebuild", rows, lambda: run_restore(first, first_file, 2000, quiet)),
            timed("backup PostgreSQL", rows, lambda: run_backup(first, second_file, 2000, quiet), second_file),
            timed("restore into PostgreSQL, with rebuild", rows, lambda: run_restore(second, second_file, 2000, quiet)),
        ]
    finally:
        asyncio.run(drop_database(admin_url, first_url))
        asyncio.run(drop_database(admin_url, second_url))


def render_section(steps: list[Step], events: int, orders: int, load: tuple[float, float]) -> str:
    lines = [
        "## Backup and restore",
        "",
        f"Generated by `python -m simulators.bench_backup --events {events} --orders {orders}` on {dt.date.today()}: "
        f"{os.cpu_count()} cores, CPython {platform.python_version()}, PostgreSQL on the same machine over loopback. "
        f"The store holds {events} accepted events on {orders} work orders, and each event has its decision, so a step "
        f"moves {2 * events} rows. A restore includes checking the file and rebuilding every projection. "
        f"One-minute load average: {load[0]:.2f} at the start and {load[1]:.2f} at the end; a load above the core count "
        "means other processes shared the machine, so treat the figures as a lower bound.",
        "",
        "| step | rows | seconds | rows/s | file size (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for step in steps:
        size = f"{step.file_bytes / 1e6:.1f}" if step.file_bytes is not None else ""
        lines.append(f"| {step.name} | {step.rows} | {step.seconds:.1f} | {step.rows_per_second:.0f} | {size} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="accepted events in the source store (default 20000)")
    parser.add_argument("--orders", type=int, default=200, help="work orders the events are spread over (default 200)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CSDP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL URL with the right to create databases",
    )
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"), help="Markdown file to update")
    args = parser.parse_args()
    if args.events < 1 or args.orders < 1:
        parser.error("--events and --orders must be at least 1")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="csdp-bench-backup-") as folder:
        steps = run(args.events, args.orders, args.postgres_url, Path(folder))
    load_after = os.getloadavg()[0]
    for step in steps:
        size = f", {step.file_bytes / 1e6:.1f} MB" if step.file_bytes is not None else ""
        print(f"{step.name}: {step.rows} rows in {step.seconds:.2f} s, {step.rows_per_second:.0f} rows/s{size}")
    write_section(args.output, render_section(steps, args.events, args.orders, (load_before, load_after)))
    print(f"updated {args.output}")


if __name__ == "__main__":
    main()
