"""Baselines for the ingestion benchmark: the same event rows written without the server.

Each baseline inserts the rows that `simulators.bench_ingest` builds for the
events it sends, one transaction per batch, from one concurrent writer per
client, and reports a `PhaseResult`. Rows are encoded before the clock
starts, so a baseline measures only the database client and the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sqlite3
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    """Throughput and batch latency of one phase, with latencies in seconds."""

    events: int
    seconds: float
    latencies: list[float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def latency_ms(self, fraction: float) -> float:
        """Return the nearest-rank percentile (`fraction` of 0.5 is the median) in milliseconds."""
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(len(ordered) * fraction))
        return ordered[rank - 1] * 1000

    def as_dict(self) -> dict[str, float]:
        return {
            "events": self.events,
            "batches": len(self.latencies),
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "p50_batch_ms": round(self.latency_ms(0.50), 2),
            "p99_batch_ms": round(self.latency_ms(0.99), 2),
            "mean_batch_ms": round(statistics.fmean(self.latencies) * 1000, 2),
        }


# The columns of the store's `events` table, in the order `PostgresStore` inserts them.
EVENT_COLUMNS = (
    "global_position, event_id, work_order_id, stream_version, type, client_event_id, actor, actor_role,"
    " device_id, occurred_at, effective_time, recorded_at, event"
)

# Same column names and types as `events` in the PostgreSQL schema, with the primary key
# but without the unique constraints, the append-only triggers and the other tables a batch writes.
PLAIN_EVENTS_POSTGRES = """
CREATE TABLE plain_events (
    global_position BIGINT PRIMARY KEY,
    event_id        UUID NOT NULL,
    work_order_id   TEXT NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT NOT NULL,
    client_event_id UUID NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    effective_time  TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    event           JSON NOT NULL
)
"""

# The SQLite counterpart, with the column types of server/store/migrations/sqlite_0001_initial.sql.
PLAIN_EVENTS_SQLITE = """
CREATE TABLE plain_events (
    global_position INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    work_order_id   TEXT NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT NOT NULL,
    client_event_id TEXT NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    occurred_at     TEXT NOT NULL,
    effective_time  TEXT NOT NULL,
    recorded_at     TEXT NOT NULL,
    event           BLOB NOT NULL
)
"""

# Per client, per batch, the rows of that batch.
Batches = Sequence[Sequence[Sequence[tuple]]]


async def asyncpg_executemany(dsn: str, batches: Batches) -> PhaseResult:
    """Insert every batch with `executemany` in its own transaction, one asyncio task per client."""
    pool = await asyncpg.create_pool(dsn, min_size=len(batches), max_size=len(batches))
    try:
        async with pool.acquire() as connection:
            await connection.execute(PLAIN_EVENTS_POSTGRES)
        placeholders = ", ".join(f"${number}" for number in range(1, 14))
        sql = f"INSERT INTO plain_events ({EVENT_COLUMNS}) VALUES ({placeholders})"

        async def client(rows_per_batch: Sequence[Sequence[tuple]]) -> list[float]:
            latencies = []
            for rows in rows_per_batch:
                started = time.perf_counter()
                async with pool.acquire() as connection, connection.transaction():
                    await connection.executemany(sql, rows)
                latencies.append(time.perf_counter() - started)
            return latencies

        started = time.perf_counter()
        per_client = await asyncio.gather(*(client(rows_per_batch) for rows_per_batch in batches))
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    return _result(batches, seconds, per_client)


def sqlite_executemany(path: Path, batches: Batches) -> PhaseResult:
    """Insert every batch with `executemany` in a `BEGIN IMMEDIATE` transaction, one thread per client.

    The threads share one connection behind a lock, with WAL and
    `synchronous=FULL`, which is how `SQLiteStore` uses SQLite.
    """
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute(PLAIN_EVENTS_SQLITE)
        lock = threading.Lock()
        sql = f"INSERT INTO plain_events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

        def insert(rows: Sequence[tuple]) -> None:
            with lock:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(sql, rows)
                connection.execute("COMMIT")

        return _run_threads(batches, insert)
    finally:
        connection.close()


def eventsourcing_recorder(dsn: str, batches: Batches) -> PhaseResult:
    """Append every batch with the `eventsourcing` library's PostgreSQL application recorder, one thread per client.

    The rows are `StoredEvent` objects: the work order id as the originator
    (a text id), the stream version, the event type as the topic and the
    event JSON as the state. The recorder assigns each event a notification
    id, the library's global position.
    """
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    url = urllib.parse.urlsplit(dsn)
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/"),
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=urllib.parse.unquote(url.username or "postgres"),
        password=urllib.parse.unquote(url.password or ""),
        pool_size=len(batches),
        originator_id_type="text",
    )
    try:
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        return _run_threads(batches, recorder.insert_events)
    finally:
        datastore.close()


def _run_threads(batches: Batches, insert: Callable[[Sequence], object]) -> PhaseResult:
    per_client: list[list[float]] = [[] for _ in batches]
    failures: list[BaseException] = []
    start = threading.Barrier(len(batches) + 1)

    def client(index: int) -> None:
        start.wait()
        try:
            for rows in batches[index]:
                started = time.perf_counter()
                insert(rows)
                per_client[index].append(time.perf_counter() - started)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            failures.append(exc)

    threads = [
        threading.Thread(target=client, args=(index,), name=f"bench-client-{index}") for index in range(len(batches))
    ]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return _result(batches, seconds, per_client)


def _result(batches: Batches, seconds: float, per_client: Sequence[list[float]]) -> PhaseResult:
    events = sum(len(rows) for rows_per_batch in batches for rows in rows_per_batch)
    return PhaseResult(events=events, seconds=seconds, latencies=[value for values in per_client for value in values])
