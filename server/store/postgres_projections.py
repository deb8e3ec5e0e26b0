"""Projection rebuild and verify on the PostgreSQL store.

One pooled connection serves the whole run, because the scratch tables are
TEMP tables of that session. They never touch the live schema, and they are
dropped at the end or with the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from ..kpi_projection.postgres import HISTORY_COLUMNS, history_columns, insert_history_sql, lock_checkpoint, write_checkpoint
from ..kpi_projection.rows import PROJECTOR_NAME
from ..projections.names import EVENT_AUDIENCE, KPI_ORDER_HISTORY, WORK_ORDER_TIMELINE, WORK_ORDERS_CURRENT
from ..projections.replay import LogRow, ProjectionRows
from .postgres_catalog import PostgresCatalog
from .postgres import PostgresStore, current_state_columns, upsert_current_sql

_encode_text = msgspec.json.Encoder().encode

# Text keys use the "C" collation, which orders by code point as Python does, so the
# comparison can merge the live and scratch rows whatever the database's collation is.
_SCRATCH_TABLES = {
    WORK_ORDERS_CURRENT: (
        'CREATE TEMP TABLE rebuilt_work_orders_current (work_order_id TEXT COLLATE "C" PRIMARY KEY,'
        " status TEXT NOT NULL, version INTEGER NOT NULL, engineer_id TEXT, priority TEXT NOT NULL,"
        " site_id TEXT NOT NULL, updated_at TIMESTAMPTZ, state JSON NOT NULL)"
    ),
    # `sequence` is the decision id, which orders the entries as ingestion inserted them.
    WORK_ORDER_TIMELINE: (
        'CREATE TEMP TABLE rebuilt_work_order_timeline (sequence BIGINT PRIMARY KEY, work_order_id TEXT COLLATE "C"'
        " NOT NULL, entry JSON NOT NULL)"
    ),
    EVENT_AUDIENCE: (
        'CREATE TEMP TABLE rebuilt_event_audience (engineer_id TEXT COLLATE "C" NOT NULL,'
        " global_position BIGINT NOT NULL, PRIMARY KEY (engineer_id, global_position))"
    ),
    KPI_ORDER_HISTORY: (
        'CREATE TEMP TABLE rebuilt_kpi_order_history (work_order_id TEXT COLLATE "C" NOT NULL,'
        " global_position BIGINT NOT NULL, stream_version INTEGER NOT NULL, type TEXT NOT NULL,"
        " effective_time TIMESTAMPTZ NOT NULL, engineer_id TEXT, asset_id TEXT, contract_id TEXT, fixed BOOLEAN,"
        " priority TEXT, hold_reason TEXT, maintenance_type TEXT, component TEXT,"
        " PRIMARY KEY (work_order_id, global_position))"
    ),
}
_CURRENT_COLUMNS = "work_order_id, status, version, engineer_id, priority, site_id, updated_at, state"

# Reads in key order, per projection: (live table query, scratch table query). The final
# transaction runs them through a cursor, so a large table is sorted once and fetched in pages.
_ORDERED_QUERIES = {
    WORK_ORDERS_CURRENT: (
        "SELECT work_order_id, status, version, engineer_id, priority, site_id, updated_at, state::text"
        ' FROM {table} ORDER BY work_order_id COLLATE "C"'
    ),
    WORK_ORDER_TIMELINE: (
        'SELECT work_order_id, {order}, entry::text FROM {table} ORDER BY work_order_id COLLATE "C", {order}'
    ),
    EVENT_AUDIENCE: (
        'SELECT engineer_id, global_position FROM {table} ORDER BY engineer_id COLLATE "C", global_position'
    ),
    KPI_ORDER_HISTORY: (
        f"SELECT {HISTORY_COLUMNS} FROM {{table}}{{limit}}"
        ' ORDER BY work_order_id COLLATE "C", global_position'
    ),
}
# The rebuilt KPI history stops at the projector's checkpoint, where the live table stops.
_KPI_CHECKPOINT_LIMIT = (
    " WHERE global_position <= (SELECT coalesce(max(position), 0) FROM projector_checkpoints"
    f" WHERE name = '{PROJECTOR_NAME}')"
)

# Appends write these tables in this order, so taking the locks in the same order cannot deadlock with them.
# SHARE ROW EXCLUSIVE blocks inserts, updates and deletes by other transactions, and no reads.
_HOLD_INGESTION = (
    "LOCK TABLE work_orders_current, event_audience, decisions, work_order_timeline IN SHARE ROW EXCLUSIVE MODE"
)


class PostgresProjectionTables:
    """The `ProjectionTables` of `server.projections.run` for one connection of a `PostgresStore`.

    Use `open` to get one: it holds the connection until the block ends.
    """

    def __init__(self, connection: asyncpg.Connection, *, page_size: int = 2000) -> None:
        self._db = connection
        self._page_size = page_size
        self._scratch: list[str] = []
        self.catalog = PostgresCatalog(connection=connection)

    @classmethod
    @asynccontextmanager
    async def open(cls, store: PostgresStore, *, page_size: int = 2000) -> AsyncIterator[PostgresProjectionTables]:
        async with store._connection() as connection:
            yield cls(connection, page_size=page_size)

    async def count_log(self) -> tuple[int, int]:
        row = await self._db.fetchrow("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM events)")
        return row[0], row[1]

    async def read_log(self, after_decision_id: int, limit: int) -> list[LogRow]:
        rows = await self._db.fetch(
            "SELECT d.decision_id, d.subject, d.actor_role, d.proposal::text, d.decision::text, e.event::text"
            " FROM decisions d LEFT JOIN events e ON e.global_position = d.global_position"
            " WHERE d.decision_id > $1 ORDER BY d.decision_id LIMIT $2",
            after_decision_id,
            limit,
        )
        return [LogRow(*row) for row in rows]

    async def count_decisions_up_to(self, decision_id: int) -> int:
        return await self._db.fetchval("SELECT count(*) FROM decisions WHERE decision_id <= $1", decision_id)

    async def create_scratch(self, projections: tuple[str, ...]) -> None:
        async with self._db.transaction():
            for projection in projections:
                await self._db.execute(f"DROP TABLE IF EXISTS pg_temp.rebuilt_{projection}")
                await self._db.execute(_SCRATCH_TABLES[projection])
                if projection == WORK_ORDER_TIMELINE:
                    await self._db.execute(
                        "CREATE INDEX ON pg_temp.rebuilt_work_order_timeline (work_order_id, sequence)"
                    )
        self._scratch = list(projections)

    async def write_scratch(self, projections: tuple[str, ...], rows: ProjectionRows) -> None:
        # Inside the final transaction this nests as a savepoint.
        async with self._db.transaction():
            states = list(rows.states.values())
            if WORK_ORDERS_CURRENT in projections and states:
                await self._db.execute(upsert_current_sql("pg_temp.rebuilt_work_orders_current"), *current_state_columns(states))
            if WORK_ORDER_TIMELINE in projections and rows.timeline:
                await self._db.execute(
                    "INSERT INTO pg_temp.rebuilt_work_order_timeline (sequence, work_order_id, entry)"
                    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::json[])",
                    [sequence for sequence, _ in rows.timeline],
                    [entry.work_order_id for _, entry in rows.timeline],
                    [_encode_text(entry).decode() for _, entry in rows.timeline],
                )
            if EVENT_AUDIENCE in projections and rows.audience:
                await self._db.execute(
                    "INSERT INTO pg_temp.rebuilt_event_audience (engineer_id, global_position)"
                    " SELECT * FROM unnest($1::text[], $2::bigint[])",
                    [engineer for engineer, _ in rows.audience],
                    [position for _, position in rows.audience],
                )
            if KPI_ORDER_HISTORY in projections and rows.kpi_history:
                await self._db.execute(
                    insert_history_sql("pg_temp.rebuilt_kpi_order_history"), *history_columns(rows.kpi_history)
                )

    async def drop_scratch(self) -> None:
        if self._db.is_closed():
            return
        for projection in self._scratch:
            await self._db.execute(f"DROP TABLE IF EXISTS pg_temp.rebuilt_{projection}")
        self._scratch = []

    @asynccontextmanager
    async def final_transaction(self, *, hold_ingestion: bool) -> AsyncIterator[None]:
        if hold_ingestion:
            async with self._db.transaction():
                await self._db.execute(_HOLD_INGESTION)
                yield
        else:
            # One snapshot for the check, the catch-up and the comparison.
            async with self._db.transaction(isolation="repeatable_read"):
                yield

    async def replace_live(self, projection: str) -> None:
        if projection == WORK_ORDERS_CURRENT:
            insert = (
                f"INSERT INTO work_orders_current ({_CURRENT_COLUMNS}) SELECT {_CURRENT_COLUMNS}"
                " FROM pg_temp.rebuilt_work_orders_current"
            )
        elif projection == WORK_ORDER_TIMELINE:
            # entry_id is taken from its sequence in the order the rows arrive, which is decision order.
            insert = (
                "INSERT INTO work_order_timeline (work_order_id, entry) SELECT work_order_id, entry"
                " FROM pg_temp.rebuilt_work_order_timeline ORDER BY sequence"
            )
        elif projection == KPI_ORDER_HISTORY:
            insert = (
                f"INSERT INTO kpi_order_history ({HISTORY_COLUMNS}) SELECT {HISTORY_COLUMNS}"
                " FROM pg_temp.rebuilt_kpi_order_history"
            )
        else:
            insert = (
                "INSERT INTO event_audience (engineer_id, global_position) SELECT engineer_id, global_position"
                " FROM pg_temp.rebuilt_event_audience"
            )
        if projection == KPI_ORDER_HISTORY:
            # Wait for a projector batch in flight, and keep the projector out until the commit.
            await lock_checkpoint(self._db)
        await self._db.execute(f"DELETE FROM {projection}")
        await self._db.execute(insert)
        if projection == KPI_ORDER_HISTORY:
            # Appends wait and every committed event was replayed, so the projector resumes after the log's last event.
            head = await self._db.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
            await write_checkpoint(self._db, head)

    async def rows(self, projection: str, *, rebuilt: bool) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Yield pages through a cursor; this needs the open transaction of `final_transaction`."""
        if rebuilt:
            table, order = f"pg_temp.rebuilt_{projection}", "sequence"
        else:
            table, order = projection, "entry_id"
        limit = _KPI_CHECKPOINT_LIMIT if projection == KPI_ORDER_HISTORY and rebuilt else ""
        cursor = await self._db.cursor(_ORDERED_QUERIES[projection].format(table=table, order=order, limit=limit))
        while True:
            page = await cursor.fetch(self._page_size)
            if not page:
                return
            yield [tuple(row) for row in page]

