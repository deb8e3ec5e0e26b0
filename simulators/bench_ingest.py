"""Ingestion throughput and batch latency on PostgreSQL and SQLite, against three baselines.

    python -m simulators.bench_ingest [--events 20000] [--clients 4] [--batch-size 100] [--json]

Every phase sends the same events: `--clients` concurrent clients, each with
its own work orders, post batches of `--batch-size` `note_added` events.
The phases are `POST /v1/events` against a `csdp serve` subprocess, the
store's `append_batch` called in this process (the service layer without
HTTP), and three baselines that write the same event rows without the
server: asyncpg `executemany` and sqlite3 `executemany` into a plain table
shaped like `events`, and the `eventsourcing` library's PostgreSQL
application recorder. Every PostgreSQL phase gets a fresh database on the
server of `--postgres-url`, dropped at the end.

After the concurrent phases, each server also runs the older sequential
sweep over batch sizes and a read of the pull feed. All figures come from
one run on one machine. Compare the ratios, because absolute numbers depend
on the disk, the CPU and whatever else runs on the machine. The figures go
to stdout (`--json` for one JSON object), progress goes to stderr, and the
Markdown report goes to `--output`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import pstats
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import structlog

from server.logging import CurrentStream
from server.security import mint_dev_token
from server.config import Settings
from server.store import PostgresStore, SQLiteStore
from shared_schema import Actor, DecisionBatch, DecisionStatus, EventBatch, ProposedEvent, RecordedEvent, Role

from . import bench_baselines
from .bench_baselines import PhaseResult
from .bench_report import PHASE_TITLES, Run, profile_summary, render_console, render_markdown
from .server_process import ServerProcess
from .bench_doc import keep_other_sections

BATCH_SIZES = (1, 10, 100, 500)
SKEW_TOLERANCE = dt.timedelta(seconds=300)
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_encode = msgspec.json.encode
_decode_decisions = msgspec.json.Decoder(DecisionBatch).decode


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- workload -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    """The events every phase sends, and the rows the baselines insert for them.

    Client `i` proposes as subject `bench-client-i` from device
    `bench-device-i`, to work orders that no other client touches.
    """

    setup: list[list[ProposedEvent]]
    """Per client, one `created` event per work order, sent before the clock starts."""

    batches: list[list[list[ProposedEvent]]]
    """Per client, the timed batches of `note_added` events."""

    recorded: list[list[list[RecordedEvent]]]
    """The timed events as the store would record them, for the baselines."""

    @property
    def events(self) -> int:
        return sum(len(batch) for batches in self.batches for batch in batches)

    @property
    def actors(self) -> list[Actor]:
        return [Actor(subject=f"bench-client-{index}", role=Role.DISPATCHER) for index in range(len(self.batches))]

    def postgres_rows(self) -> list[list[list[tuple]]]:
        """Rows in the column order and Python types that `PostgresStore` passes to asyncpg."""
        return [
            [[_event_row(event, _encode(event).decode()) for event in batch] for batch in batches]
            for batches in self.recorded
        ]

    def sqlite_rows(self) -> list[list[list[tuple]]]:
        """Rows in the column order and types that `SQLiteStore` passes to sqlite3."""
        return [[[_sqlite_row(event) for event in batch] for batch in batches] for batches in self.recorded]

    def stored_events(self) -> list[list[list[Any]]]:
        from eventsourcing.persistence import StoredEvent

        return [
            [
                [
                    StoredEvent(
                        originator_id=event.work_order_id,
                        originator_version=event.stream_version,
                        topic=event.type,
                        state=_encode(event),
                    )
                    for event in batch
                ]
                for batch in batches
            ]
            for batches in self.recorded
        ]


def build_workload(events: int, clients: int, batch_size: int, orders_per_client: int) -> Workload:
    """Split `events` into whole batches per client, rounding down.

    Raises ValueError when `events` is too small for one batch per client.
    """
    batches_per_client = events // (clients * batch_size)
    if batches_per_client < 1:
        raise ValueError(f"--events {events} is fewer than one batch per client. Use at least {clients * batch_size}.")
    now = dt.datetime.now(dt.timezone.utc)
    position = 0
    setup, batches, recorded = [], [], []
    for client in range(clients):
        subject, device = f"bench-client-{client}", f"bench-device-{client}"
        orders = [f"bench-c{client}-wo{index}" for index in range(orders_per_client)]
        versions = dict.fromkeys(orders, 1)
        setup.append(
            [
                _proposal(order, "created", {"title": "benchmark order", "site_id": "site-bench"}, 0, device, now)
                for order in orders
            ]
        )
        client_batches, client_recorded = [], []
        for batch_index in range(batches_per_client):
            batch, rows = [], []
            for offset in range(batch_size):
                order = orders[(batch_index * batch_size + offset) % orders_per_client]
                proposal = _proposal(order, "note_added", {"text": "benchmark note"}, versions[order], device, now)
                versions[order] += 1
                position += 1
                batch.append(proposal)
                rows.append(_recorded(proposal, versions[order], position, subject, now))
            client_batches.append(batch)
            client_recorded.append(rows)
        batches.append(client_batches)
        recorded.append(client_recorded)
    return Workload(setup=setup, batches=batches, recorded=recorded)


def _proposal(
    order: str, event_type: str, payload: dict[str, str], base_version: int, device: str, now: dt.datetime
) -> ProposedEvent:
    return ProposedEvent(
        client_event_id=uuid.uuid4(),
        work_order_id=order,
        type=event_type,
        payload=payload,
        occurred_at=now,
        base_version=base_version,
        device_id=device,
    )


def _recorded(proposal: ProposedEvent, version: int, position: int, subject: str, now: dt.datetime) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        global_position=position,
        stream_version=version,
        client_event_id=proposal.client_event_id,
        work_order_id=proposal.work_order_id,
        type=proposal.type,
        payload=proposal.payload,
        occurred_at=proposal.occurred_at,
        effective_time=proposal.occurred_at,
        recorded_at=now,
        base_version=proposal.base_version,
        device_id=proposal.device_id,
        actor=subject,
        actor_role=Role.DISPATCHER.value,
    )


def _event_row(event: RecordedEvent, document: object) -> tuple:
    return (
        event.global_position,
        event.event_id,
        event.work_order_id,
        event.stream_version,
        event.type,
        event.client_event_id,
        event.actor,
        event.actor_role,
        event.device_id,
        event.occurred_at,
        event.effective_time,
        event.recorded_at,
        document,
    )


def _sqlite_row(event: RecordedEvent) -> tuple:
    row = list(_event_row(event, _encode(event)))
    row[1], row[5] = str(event.event_id), str(event.client_event_id)
    row[9], row[10], row[11] = (
        value.isoformat() for value in (event.occurred_at, event.effective_time, event.recorded_at)
    )
    return tuple(row)


def _check_accepted(decisions: list[Any], phase: str) -> None:
    """Raise RuntimeError unless every decision accepted its event, so no phase times rejections."""
    for decision in decisions:
        if decision.status is not DecisionStatus.ACCEPTED:
            raise RuntimeError(
                f"{phase}: event {decision.client_event_id} was {decision.status.value} "
                f"({decision.reason_code.value}: {decision.message}). The benchmark expects every event to be accepted."
            )


# -- phases through the server and the store ---------------------------------------


async def http_phase(base_url: str, tokens: list[str], workload: Workload, phase: str) -> PhaseResult:
    """Post every client's batches over its own connection, the clients concurrently."""
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=120,
        )
        for token in tokens
    ]
    try:

        async def post(client: httpx.AsyncClient, body: bytes) -> None:
            response = await client.post("/v1/events", content=body)
            response.raise_for_status()
            _check_accepted(_decode_decisions(response.content).decisions, phase)

        setup_bodies = [_encode(EventBatch(events=events)) for events in workload.setup]
        await asyncio.gather(*(post(client, body) for client, body in zip(clients, setup_bodies, strict=True)))
        bodies = [[_encode(EventBatch(events=batch)) for batch in batches] for batches in workload.batches]

        async def run(client: httpx.AsyncClient, client_bodies: list[bytes]) -> list[float]:
            latencies = []
            for body in client_bodies:
                started = time.perf_counter()
                response = await client.post("/v1/events", content=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                _check_accepted(_decode_decisions(response.content).decisions, phase)
            return latencies

        started = time.perf_counter()
        per_client = await asyncio.gather(
            *(run(client, client_bodies) for client, client_bodies in zip(clients, bodies, strict=True))
        )
        seconds = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return PhaseResult(
        events=workload.events, seconds=seconds, latencies=[value for values in per_client for value in values]
    )


async def service_phase(store: PostgresStore | SQLiteStore, workload: Workload, phase: str) -> PhaseResult:
    """Call `append_batch` from one asyncio task per client, as the HTTP handler does."""

    async def append(actor: Actor, events: list[ProposedEvent]) -> None:
        decisions = await store.append_batch(actor, events, dt.datetime.now(dt.timezone.utc), SKEW_TOLERANCE)
        _check_accepted(decisions, phase)

    actors = workload.actors
    await asyncio.gather(*(append(actor, events) for actor, events in zip(actors, workload.setup, strict=True)))

    async def run(actor: Actor, batches: list[list[ProposedEvent]]) -> list[float]:
        latencies = []
        for batch in batches:
            started = time.perf_counter()
            await append(actor, batch)
            latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    runs = [run(actor, batches) for actor, batches in zip(actors, workload.batches, strict=True)]
    per_client = await asyncio.gather(*runs)
    seconds = time.perf_counter() - started
    return PhaseResult(
        events=workload.events, seconds=seconds, latencies=[value for values in per_client for value in values]
    )


async def service_phase_on(store: PostgresStore | SQLiteStore, workload: Workload, phase: str) -> PhaseResult:
    await store.open(migrate=True)
    try:
        return await service_phase(store, workload, phase)
    finally:
        await store.close()


# -- sequential sweep over batch sizes (one client) -----------------------------------


def _note(work_order_id: str, base_version: int) -> ProposedEvent:
    return ProposedEvent(
        client_event_id=uuid.uuid4(),
        work_order_id=work_order_id,
        type="note_added",
        payload={"text": "benchmark note"},
        occurred_at=dt.datetime.now(dt.timezone.utc),
        base_version=base_version,
        device_id="bench",
    )


def _post(client: httpx.Client, events: list[ProposedEvent]) -> float:
    body = msgspec.json.encode(EventBatch(events=events))
    started = time.perf_counter()
    response = client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def measure(client: httpx.Client, total_events: int, batch_size: int, stream_count: int) -> dict[str, float]:
    streams = [f"bench-{batch_size}-{index}" for index in range(stream_count)]
    created = [
        ProposedEvent(
            client_event_id=uuid.uuid4(),
            work_order_id=stream,
            type="created",
            payload={"title": "benchmark order", "site_id": "site-bench"},
            occurred_at=dt.datetime.now(dt.timezone.utc),
            base_version=0,
            device_id="bench",
        )
        for stream in streams
    ]
    _post(client, created)
    events = [_note(streams[index % stream_count], 1) for index in range(total_events)]
    batches = [events[start : start + batch_size] for start in range(0, total_events, batch_size)]

    latencies = [_post(client, batch) for batch in batches]
    replay_started = time.perf_counter()
    for batch in batches:
        _post(client, batch)
    replay_seconds = time.perf_counter() - replay_started
    return {
        "events_per_second": total_events / sum(latencies),
        "median_batch_ms": statistics.median(latencies) * 1000,
        "replay_events_per_second": total_events / replay_seconds,
    }


def measure_pull(client: httpx.Client) -> tuple[int, float]:
    cursor, pulled = "0", 0
    started = time.perf_counter()
    while True:
        page = client.get("/v1/sync/changes", params={"since": cursor, "limit": 500}).json()
        pulled += len(page["events"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return pulled, pulled / (time.perf_counter() - started)


def sweep(base_url: str, token: str, events: int, streams: int) -> dict[str, Any]:
    """Run the sequential batch-size sweep and one full read of the pull feed."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        sizes = {size: measure(client, events, size, streams) for size in BATCH_SIZES}
        pulled, pull_rate = measure_pull(client)
    return {"batch_sizes": sizes, "pulled_events": pulled, "pull_events_per_second": pull_rate}


# -- databases ----------------------------------------------------------------------


class ScratchDatabases:
    """Creates PostgreSQL databases named `csdp_bench_<run>_<label>` and drops exactly those at exit."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run_id = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []

    def url_of(self, name: str) -> str:
        return urllib.parse.urlunsplit(urllib.parse.urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def create(self, label: str) -> str:
        """Create a database and return its URL."""
        name = f"csdp_bench_{self.run_id}_{label}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.url_of(name)

    def drop_all(self) -> None:
        while self.created:
            name = self.created.pop()
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def server_facts(self) -> dict[str, str]:
        connection = await asyncpg.connect(self.admin_url)
        try:
            facts = {"version": await connection.fetchval("SHOW server_version")}
            for setting in ("fsync", "synchronous_commit", "shared_buffers"):
                facts[setting] = await connection.fetchval(f"SHOW {setting}")
            return facts
        finally:
            await connection.close()

    async def _execute(self, sql: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def __enter__(self) -> ScratchDatabases:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop_all()


# -- run ------------------------------------------------------------------------------


class Phases:
    """Numbers the phases in the progress lines on stderr."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.done += 1
        _log(f"[{self.done}/{self.total}] {label} ...")
        started = time.perf_counter()
        yield
        _log(f"[{self.done}/{self.total}] {label}: done in {time.perf_counter() - started:.1f} s")


def record(run: Run, phases: Phases, name: str, measure_phase: Callable[[], PhaseResult]) -> None:
    title, store = PHASE_TITLES[name]
    with phases.step(f"{title.replace('`', '')} on {store}"):
        result = measure_phase()
        run.phases[name] = result
        _log(
            f"    {result.events} events at {result.events_per_second:.0f} events/s, "
            f"p50 {result.latency_ms(0.5):.1f} ms, p99 {result.latency_ms(0.99):.1f} ms per batch"
        )


def run_http(run: Run, phases: Phases, name: str, workload: Workload, var_dir: Path, database_url: str | None) -> None:
    """Measure one server subprocess: the concurrent phase, then the sweep on the same server."""
    args = run.args
    # The sweep sends 1,000 one-event batches from one subject; the benchmark
    # measures ingestion, so the per-subject rate limit is off.
    with ServerProcess(var_dir, database_url=database_url, environment={"CSDP_RATE_LIMIT_PER_MINUTE": "0"}) as server:
        settings = Settings(var_dir=var_dir)
        tokens = [mint_dev_token(settings, subject=actor.subject, role=actor.role) for actor in workload.actors]
        record(run, phases, name, lambda: asyncio.run(http_phase(server.base_url, tokens, workload, name)))
        if args.sweep_events:
            store = PHASE_TITLES[name][1]
            with phases.step(f"sequential sweep over batch sizes on {store}, {args.sweep_events} events per size"):
                token = mint_dev_token(settings, subject="bench", role=Role.DISPATCHER)
                run.sweeps[store] = sweep(server.base_url, token, args.sweep_events, args.sweep_streams)


def run_profile(run: Run, databases: ScratchDatabases, workload: Workload, top: int = 25) -> None:
    """Profile one more service-layer pass on PostgreSQL with cProfile, outside the timed phases."""
    url = databases.create("profile")
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(service_phase_on(PostgresStore(url), workload, "profile"))
    profiler.disable()
    profiler.dump_stats(run.args.profile)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    report = text.getvalue()
    # Shorter paths: the repository, site-packages and the standard library become relative.
    for prefix in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], str(Path.cwd())):
        report = report.replace(prefix + os.sep, "")
    run.profile = profile_summary(stats) + "\n\n" + report.strip("\n")


def execute(args: argparse.Namespace) -> Run:
    """Run every phase in a fresh temporary folder, deleted afterwards unless a phase fails."""
    var_root = Path(tempfile.mkdtemp(prefix="csdp-bench-"))
    try:
        run = execute_in(args, var_root)
    except BaseException:
        _log(f"The benchmark failed. Server logs and SQLite files are kept in {var_root}")
        raise
    shutil.rmtree(var_root, ignore_errors=True)
    return run


def execute_in(args: argparse.Namespace, var_root: Path) -> Run:
    phases = Phases(8)
    if args.sweep_events:
        phases.total += 2
    if args.profile:
        phases.total += 1
    with phases.step(f"building {args.events} events for {args.clients} clients"):
        workload = build_workload(args.events, args.clients, args.batch_size, args.orders_per_client)
    run = Run(args=args, workload_events=workload.events, load_before=os.getloadavg()[0])

    with ScratchDatabases(args.postgres_url) as databases:
        run.postgres = asyncio.run(databases.server_facts())
        run_http(run, phases, "http_postgres", workload, var_root / "http-postgres", databases.create("http"))
        run_http(run, phases, "http_sqlite", workload, var_root / "http-sqlite", None)

        service_url = databases.create("service")
        record(
            run,
            phases,
            "service_postgres",
            lambda: asyncio.run(service_phase_on(PostgresStore(service_url), workload, "service_postgres")),
        )
        sqlite_path = var_root / "service-sqlite" / "csdp.sqlite3"
        record(
            run,
            phases,
            "service_sqlite",
            lambda: asyncio.run(service_phase_on(SQLiteStore(sqlite_path), workload, "service_sqlite")),
        )

        rows_url = databases.create("asyncpg")
        postgres_rows = workload.postgres_rows()
        record(
            run,
            phases,
            "asyncpg_executemany",
            lambda: asyncio.run(bench_baselines.asyncpg_executemany(rows_url, postgres_rows)),
        )
        sqlite_rows = workload.sqlite_rows()
        record(
            run,
            phases,
            "sqlite3_executemany",
            lambda: bench_baselines.sqlite_executemany(var_root / "plain.sqlite3", sqlite_rows),
        )
        recorder_url = databases.create("eventsourcing")
        stored_events = workload.stored_events()
        record(
            run,
            phases,
            "eventsourcing_postgres",
            lambda: bench_baselines.eventsourcing_recorder(recorder_url, stored_events),
        )

        if args.profile:
            with phases.step(f"cProfile of the service layer on PostgreSQL, written to {args.profile}"):
                run_profile(run, databases, workload)
    run.load_after = os.getloadavg()[0]
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators.bench_ingest", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events",
        type=int,
        default=20000,
        help="events per concurrent phase, rounded down to whole batches per client (default 20000)",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="events per batch in the concurrent phases (default 100)"
    )
    parser.add_argument(
        "--orders-per-client", type=int, default=10, help="work orders each client writes to (default 10)"
    )

    parser.add_argument(
        "--sweep-events",
        type=int,
        default=1000,
        help="events per batch size in the sequential sweep, or 0 to skip the sweep (default 1000)",
    )
    parser.add_argument(
        "--sweep-streams", type=int, default=50, help="work orders the sweep spreads its events over (default 50)"
    )

    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help=f"PostgreSQL database used to create and drop the benchmark databases (default {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also profile the service layer on PostgreSQL with cProfile and write the stats to this file",
    )

    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="Markdown report to write (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the Markdown report")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object instead of a table")

    args = parser.parse_args(argv)
    for option in ("events", "clients", "batch_size", "orders_per_client", "sweep_streams"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be 1 or more")
    if args.sweep_events < 0:
        parser.error("--sweep-events must be 0 or more")
    if args.events < args.clients * args.batch_size:
        parser.error(f"--events must be at least --clients times --batch-size ({args.clients * args.batch_size})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import eventsourcing.postgres  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"error: {exc}. Install the benchmark packages with `pip install -e '.[bench]'`.") from exc
    load = os.getloadavg()[0]
    if load > 0.5:
        _log(
            f"warning: the one-minute load average is {load:.1f}, so other processes share the CPU"
            " and the figures will be lower and noisier than on an idle machine"
        )
    # The stores log through structlog. Its warnings and errors go to stderr, so stdout carries only the figures.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(CurrentStream("stderr")),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    run = execute(args)
    if not args.no_report:
        args.output.write_text(keep_other_sections(render_markdown(run), args.output))
        _log(f"wrote {args.output}")
    if args.json:
        print(json.dumps(run.as_dict(), indent=2))
    else:
        print(render_console(run))



if __name__ == "__main__":
    main()
