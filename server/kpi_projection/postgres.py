"""KPI history and projector checkpoint on the PostgreSQL store.

A batch is one transaction that locks the checkpoint row first
(`SELECT ... FOR UPDATE`), so projectors of several server processes apply
batches one after another, and the history rows and the checkpoint commit
together.
"""

from __future__ import annotations

import asyncpg
import msgspec


from ..upcasting import decode_recorded_event
from ..store.postgres import PostgresStore
from .rows import PROJECTOR_NAME, HistoryRow, HistoryWindow, ProjectorLag, history_rows

_decode_event = decode_recorded_event

HISTORY_COLUMNS = (
    "work_order_id, global_position, stream_version, type, effective_time, engineer_id, asset_id, contract_id, fixed,"
    " priority, hold_reason, maintenance_type, component"
)
_HISTORY_TYPES = (
    "$1::text[], $2::bigint[], $3::int[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[],"
    " $9::bool[], $10::text[], $11::text[], $12::text[], $13::text[]"
)

# See the SQLite module: orders created before the end with an event at or after the start, and
# the orders created in (start, repeat_end] that can make a repeat visit.
_WINDOW_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM kpi_order_history WHERE work_order_id IN ("
    " (SELECT work_order_id FROM kpi_order_history WHERE type = 'created' AND effective_time < $2"
    " INTERSECT SELECT work_order_id FROM kpi_order_history WHERE effective_time >= $1)"
    " UNION SELECT work_order_id FROM kpi_order_history"
    " WHERE type = 'created' AND effective_time > $1 AND effective_time <= $3"
    ") ORDER BY global_position"
)


def history_columns(rows: list[HistoryRow]) -> list[list[object]]:
    """Turn rows into one list per column of `kpi_order_history`, for `insert_history_sql`."""
    return [list(column) for column in zip(*(msgspec.structs.astuple(row) for row in rows))] or [[] for _ in range(13)]


def insert_history_sql(table: str) -> str:
    return f"INSERT INTO {table} ({HISTORY_COLUMNS}) SELECT * FROM unnest({_HISTORY_TYPES})"


async def lock_checkpoint(db: asyncpg.Connection) -> int:
    """Lock the projector's checkpoint row for this transaction, creating it at 0; return its position."""
    await db.execute(
        "INSERT INTO projector_checkpoints (name, position, updated_at) VALUES ($1, 0, now())"
        " ON CONFLICT (name) DO NOTHING",
        PROJECTOR_NAME,
    )
    return int(
        await db.fetchval("SELECT position FROM projector_checkpoints WHERE name = $1 FOR UPDATE", PROJECTOR_NAME)
    )


async def write_checkpoint(db: asyncpg.Connection, position: int) -> None:
    await db.execute(
        "INSERT INTO projector_checkpoints (name, position, updated_at) VALUES ($1, $2, now())"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        PROJECTOR_NAME,
        position,
    )


class PostgresKpiHistory:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def apply_batch(self, limit: int) -> tuple[int, int]:
        """Apply up to `limit` events after the checkpoint; return (events read, new checkpoint)."""

        async def work(db: asyncpg.Connection) -> tuple[int, int]:
            async with db.transaction():
                checkpoint = await lock_checkpoint(db)
                raw = await db.fetch(
                    "SELECT event::text FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2",
                    checkpoint,
                    limit,
                )
                if not raw:
                    return 0, checkpoint
                events = [_decode_event(row[0]) for row in raw]
                rows = history_rows(events)
                if rows:
                    # A plain INSERT: applying an event twice violates the primary key instead of counting it twice.
                    await db.execute(insert_history_sql("kpi_order_history"), *history_columns(rows))
                position = events[-1].global_position
                await write_checkpoint(db, position)
                return len(events), position

        return await self._store._with_connection(work)

    async def lag(self) -> ProjectorLag:
        async def read(db: asyncpg.Connection) -> ProjectorLag:
            row = await db.fetchrow(
                "SELECT (SELECT coalesce(max(global_position), 0) FROM events),"
                " coalesce((SELECT position FROM projector_checkpoints WHERE name = $1), 0)",
                PROJECTOR_NAME,
            )
            head, checkpoint = int(row[0]), int(row[1])
            recorded = await db.fetchval("SELECT recorded_at FROM events WHERE global_position = $1", checkpoint)
            return ProjectorLag(head_position=head, checkpoint_position=checkpoint, checkpoint_recorded_at=recorded)

        return await self._store._with_connection(read)

    async def window_rows(self, window: HistoryWindow) -> list[HistoryRow]:
        """Return the history rows of every order the window needs, in global order, in one query."""

        async def read(db: asyncpg.Connection) -> list[HistoryRow]:
            records = await db.fetch(_WINDOW_SQL, window.start, window.end, window.repeat_end)
            return [HistoryRow(*record) for record in records]

        return await self._store._with_connection(read)

