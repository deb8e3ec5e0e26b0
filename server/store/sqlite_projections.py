"""Projection rebuild and verify on the embedded SQLite store.

Scratch tables live in the connection's TEMP schema, so they never touch the
database file and disappear when the connection closes. Every call goes
through the store's single connection and lock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec

from ..kpi_projection.rows import PROJECTOR_NAME
from ..kpi_projection.sqlite import HISTORY_COLUMNS, insert_history_sql, sqlite_row, write_checkpoint
from ..projections.names import EVENT_AUDIENCE, KPI_ORDER_HISTORY, WORK_ORDER_TIMELINE, WORK_ORDERS_CURRENT
from ..projections.replay import LogRow, ProjectionRows
from .sqlite import SQLiteStore, current_state_rows
from .sqlite_catalog import SQLiteCatalog

T = TypeVar("T")
_encode = msgspec.json.encode

_SCRATCH_TABLES = {
    WORK_ORDERS_CURRENT: (
        "CREATE TEMP TABLE rebuilt_work_orders_current (work_order_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " version INTEGER NOT NULL, engineer_id TEXT, priority TEXT NOT NULL, site_id TEXT NOT NULL,"
        " updated_at TEXT, state BLOB NOT NULL)"
    ),
    # `sequence` is the decision id, which orders the entries as ingestion inserted them.
    WORK_ORDER_TIMELINE: (
        "CREATE TEMP TABLE rebuilt_work_order_timeline (sequence INTEGER PRIMARY KEY, work_order_id TEXT NOT NULL,"
        " entry BLOB NOT NULL)"
    ),
    EVENT_AUDIENCE: (
        "CREATE TEMP TABLE rebuilt_event_audience (engineer_id TEXT NOT NULL, global_position INTEGER NOT NULL,"
        " PRIMARY KEY (engineer_id, global_position)) WITHOUT ROWID"
    ),
    KPI_ORDER_HISTORY: (
        "CREATE TEMP TABLE rebuilt_kpi_order_history (work_order_id TEXT NOT NULL, global_position INTEGER NOT NULL,"
        " stream_version INTEGER NOT NULL, type TEXT NOT NULL, effective_time TEXT NOT NULL, engineer_id TEXT,"
        " asset_id TEXT, contract_id TEXT, fixed INTEGER, priority TEXT, hold_reason TEXT, maintenance_type TEXT,"
        " component TEXT,"
        " PRIMARY KEY (work_order_id, global_position)) WITHOUT ROWID"
    ),
}
_CURRENT_COLUMNS = "work_order_id, status, version, engineer_id, priority, site_id, updated_at, state"

# Keyset-paginated reads in key order, per projection: (live table query, scratch table query).
# SQLite's default BINARY collation orders text by code point, as Python does.
_PAGE_QUERIES = {
    WORK_ORDERS_CURRENT: tuple(
        f"SELECT {_CURRENT_COLUMNS} FROM {table} WHERE work_order_id > ? ORDER BY work_order_id LIMIT ?"
        for table in ("main.work_orders_current", "temp.rebuilt_work_orders_current")
    ),
    WORK_ORDER_TIMELINE: tuple(
        f"SELECT work_order_id, {order}, entry FROM {table} WHERE (work_order_id, {order}) > (?, ?)"
        f" ORDER BY work_order_id, {order} LIMIT ?"
        for table, order in (
            ("main.work_order_timeline", "entry_id"),
            ("temp.rebuilt_work_order_timeline", "sequence"),
        )
    ),
    EVENT_AUDIENCE: tuple(
        f"SELECT engineer_id, global_position FROM {table} WHERE (engineer_id, global_position) > (?, ?)"
        " ORDER BY engineer_id, global_position LIMIT ?"
        for table in ("main.event_audience", "temp.rebuilt_event_audience")
    ),
    # The rebuilt copy stops at the KPI projector's checkpoint, where the live table stops.
    KPI_ORDER_HISTORY: tuple(
        f"SELECT {HISTORY_COLUMNS} FROM {table} WHERE (work_order_id, global_position) > (?, ?){limit}"
        " ORDER BY work_order_id, global_position LIMIT ?"
        for table, limit in (
            ("main.kpi_order_history", ""),
            (
                "temp.rebuilt_kpi_order_history",
                " AND global_position <= (SELECT coalesce(max(position), 0) FROM main.projector_checkpoints"
                f" WHERE name = '{PROJECTOR_NAME}')",
            ),
        )
    ),
}
_FIRST_KEY: dict[str, tuple[Any, ...]] = {
    WORK_ORDERS_CURRENT: ("",),
    WORK_ORDER_TIMELINE: ("", -1),
    EVENT_AUDIENCE: ("", -1),
    KPI_ORDER_HISTORY: ("", -1),
}


class SQLiteProjectionTables:
    """The `ProjectionTables` of `server.projections.run` for an open `SQLiteStore`."""

    def __init__(self, store: SQLiteStore, *, page_size: int = 2000) -> None:
        self._store = store
        self._page_size = page_size
        self._scratch: list[str] = []
        self.catalog = SQLiteCatalog(store)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._store._run(work)

    async def count_log(self) -> tuple[int, int]:
        def read(db: sqlite3.Connection) -> tuple[int, int]:
            decisions = db.execute("SELECT count(*) FROM decisions").fetchone()[0]
            events = db.execute("SELECT count(*) FROM events").fetchone()[0]
            return decisions, events

        return await self._run(read)

    async def read_log(self, after_decision_id: int, limit: int) -> list[LogRow]:
        def read(db: sqlite3.Connection) -> list[LogRow]:
            rows = db.execute(
                "SELECT d.decision_id, d.subject, d.actor_role, d.proposal, d.decision, e.event FROM decisions d"
                " LEFT JOIN events e ON e.global_position = d.global_position"
                " WHERE d.decision_id > ? ORDER BY d.decision_id LIMIT ?",
                (after_decision_id, limit),
            ).fetchall()
            return [LogRow(*row) for row in rows]

        return await self._run(read)

    async def count_decisions_up_to(self, decision_id: int) -> int:
        return await self._run(
            lambda db: db.execute("SELECT count(*) FROM decisions WHERE decision_id <= ?", (decision_id,)).fetchone()[0]
        )

    async def create_scratch(self, projections: tuple[str, ...]) -> None:
        def create(db: sqlite3.Connection) -> None:
            for projection in projections:
                db.execute(f"DROP TABLE IF EXISTS temp.rebuilt_{projection}")
                db.execute(_SCRATCH_TABLES[projection])
                if projection == WORK_ORDER_TIMELINE:
                    db.execute(
                        "CREATE INDEX temp.rebuilt_work_order_timeline_order"
                        " ON rebuilt_work_order_timeline (work_order_id, sequence)"
                    )

        await self._run(create)
        self._scratch = list(projections)

    async def write_scratch(self, projections: tuple[str, ...], rows: ProjectionRows) -> None:
        def write(db: sqlite3.Connection) -> None:
            # Outside the final transaction the writes get one of their own; TEMP tables take no lock on the file.
            own_transaction = not db.in_transaction
            if own_transaction:
                db.execute("BEGIN")
            if WORK_ORDERS_CURRENT in projections:
                db.executemany(
                    f"INSERT OR REPLACE INTO temp.rebuilt_work_orders_current ({_CURRENT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    current_state_rows(rows.states.values()),
                )
            if WORK_ORDER_TIMELINE in projections:
                db.executemany(
                    "INSERT INTO temp.rebuilt_work_order_timeline (sequence, work_order_id, entry) VALUES (?, ?, ?)",
                    [(sequence, entry.work_order_id, _encode(entry)) for sequence, entry in rows.timeline],
                )
            if EVENT_AUDIENCE in projections:
                db.executemany(
                    "INSERT INTO temp.rebuilt_event_audience (engineer_id, global_position) VALUES (?, ?)",
                    rows.audience,
                )
            if KPI_ORDER_HISTORY in projections:
                db.executemany(
                    insert_history_sql("temp.rebuilt_kpi_order_history"), [sqlite_row(row) for row in rows.kpi_history]
                )
            if own_transaction:
                db.execute("COMMIT")

        await self._run(write)

    async def drop_scratch(self) -> None:
        def drop(db: sqlite3.Connection) -> None:
            for projection in self._scratch:
                db.execute(f"DROP TABLE IF EXISTS temp.rebuilt_{projection}")

        if self._scratch:
            await self._run(drop)
            self._scratch = []

    @asynccontextmanager
    async def final_transaction(self, *, hold_ingestion: bool) -> AsyncIterator[None]:
        # BEGIN IMMEDIATE takes the write lock that every append needs. A plain BEGIN reads one
        # snapshot of the WAL file from its first read on, while appends go on.
        await self._run(lambda db: db.execute("BEGIN IMMEDIATE" if hold_ingestion else "BEGIN"))
        try:
            yield
        except BaseException:
            await self._run(_rollback)
            raise
        await self._run(lambda db: db.execute("COMMIT"))

    async def replace_live(self, projection: str) -> None:
        if projection == WORK_ORDERS_CURRENT:
            insert = (
                f"INSERT INTO main.work_orders_current ({_CURRENT_COLUMNS}) SELECT {_CURRENT_COLUMNS}"
                " FROM temp.rebuilt_work_orders_current ORDER BY work_order_id"
            )
        elif projection == WORK_ORDER_TIMELINE:
            insert = (
                "INSERT INTO main.work_order_timeline (work_order_id, entry) SELECT work_order_id, entry"
                " FROM temp.rebuilt_work_order_timeline ORDER BY sequence"
            )
        elif projection == KPI_ORDER_HISTORY:
            insert = (
                f"INSERT INTO main.kpi_order_history ({HISTORY_COLUMNS}) SELECT {HISTORY_COLUMNS}"
                " FROM temp.rebuilt_kpi_order_history"
            )
        else:
            insert = (
                "INSERT INTO main.event_audience (engineer_id, global_position) SELECT engineer_id, global_position"
                " FROM temp.rebuilt_event_audience"
            )

        def replace(db: sqlite3.Connection) -> None:
            db.execute(f"DELETE FROM main.{projection}")
            db.execute(insert)
            if projection == KPI_ORDER_HISTORY:
                # The final transaction holds the write lock and has replayed every event, so the
                # projector resumes after the last event of the log.
                head = db.execute("SELECT coalesce(max(global_position), 0) FROM main.events").fetchone()[0]
                write_checkpoint(db, head)

        await self._run(replace)

    async def rows(self, projection: str, *, rebuilt: bool) -> AsyncIterator[list[tuple[Any, ...]]]:
        query = _PAGE_QUERIES[projection][1 if rebuilt else 0]
        after = _FIRST_KEY[projection]
        key_width = len(after)
        while True:
            page = await self._run(lambda db: db.execute(query, (*after, self._page_size)).fetchall())
            if not page:
                return
            after = tuple(page[-1][:key_width])
            if projection == WORK_ORDERS_CURRENT:
                page = [(*row[:6], _parse_timestamp(row[6]), row[7]) for row in page]
            yield page


def _parse_timestamp(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")
