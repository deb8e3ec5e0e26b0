"""Reads behind the live stream: new events with their order's state and audience.

They live outside the store classes so the live stream does not grow the two
store modules; each function dispatches on the store type. Both stores make a
position visible only once every lower position is committed or was never
used (see the module docstrings of `sqlite.py` and `postgres.py`), so reading
`global_position > position` never skips an event that commits late.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import asyncpg

from .postgres import PostgresStore
from .sqlite import SQLiteStore


@dataclasses.dataclass(frozen=True, slots=True)
class LiveRow:
    """One accepted event as the live stream sends it, with the JSON texts read from the store."""

    position: int
    work_order_id: str
    type: str
    event_json: str
    state_json: str | None
    """The order's current state when the row was read, which may be later than the event."""
    assignee: str | None
    """The order's current engineer when the row was read."""
    audience: frozenset[str]
    """The engineers who may see the event: the order's assignee just before and just after it."""


_POSTGRES_COLUMNS = (
    "SELECT e.global_position, e.work_order_id, e.type, e.event::text, w.state::text, w.engineer_id,"
    " ARRAY(SELECT a.engineer_id FROM event_audience a WHERE a.global_position = e.global_position)"
)
_SQLITE_COLUMNS = (
    "SELECT e.global_position, e.work_order_id, e.type, e.event, w.state, w.engineer_id,"
    " (SELECT json_group_array(a.engineer_id) FROM event_audience a WHERE a.global_position = e.global_position)"
)


async def live_rows_since(
    store: SQLiteStore | PostgresStore, position: int, *, limit: int, engineer_id: str | None = None
) -> list[LiveRow]:
    """Return up to `limit` accepted events after `position` in global order, in one query.

    With `engineer_id`, only the events in that engineer's audience are read.
    """
    if isinstance(store, SQLiteStore):
        if engineer_id is None:
            sql = (
                f"{_SQLITE_COLUMNS} FROM events e LEFT JOIN work_orders_current w ON w.work_order_id = e.work_order_id"
                " WHERE e.global_position > ? ORDER BY e.global_position LIMIT ?"
            )
            params: tuple[object, ...] = (position, limit)
        else:
            sql = (
                f"{_SQLITE_COLUMNS} FROM event_audience f JOIN events e ON e.global_position = f.global_position"
                " LEFT JOIN work_orders_current w ON w.work_order_id = e.work_order_id"
                " WHERE f.engineer_id = ? AND f.global_position > ? ORDER BY f.global_position LIMIT ?"
            )
            params = (engineer_id, position, limit)

        def read(db: sqlite3.Connection) -> list[LiveRow]:
            rows = db.execute(sql, params).fetchall()
            return [_row(row[:6], json.loads(row[6]) if row[6] else []) for row in rows]

        return await store._run(read)

    if engineer_id is None:
        pg_sql = (
            f"{_POSTGRES_COLUMNS} FROM events e LEFT JOIN work_orders_current w ON w.work_order_id = e.work_order_id"
            " WHERE e.global_position > $1 ORDER BY e.global_position LIMIT $2"
        )
        pg_params: tuple[object, ...] = (position, limit)
    else:
        pg_sql = (
            f"{_POSTGRES_COLUMNS} FROM event_audience f JOIN events e ON e.global_position = f.global_position"
            " LEFT JOIN work_orders_current w ON w.work_order_id = e.work_order_id"
            " WHERE f.engineer_id = $3 AND f.global_position > $1 ORDER BY f.global_position LIMIT $2"
        )
        pg_params = (position, limit, engineer_id)

    async def read_postgres(db: asyncpg.Connection) -> list[LiveRow]:
        rows = await db.fetch(pg_sql, *pg_params)
        return [_row(tuple(row[:6]), list(row[6])) for row in rows]

    return await store._with_connection(read_postgres)


async def last_position(store: SQLiteStore | PostgresStore) -> int:
    """Return the highest committed global position, 0 for an empty log."""
    sql = "SELECT COALESCE(MAX(global_position), 0) FROM events"
    if isinstance(store, SQLiteStore):
        return await store._run(lambda db: int(db.execute(sql).fetchone()[0]))

    async def read_postgres(db: asyncpg.Connection) -> int:
        return int(await db.fetchval(sql))

    return await store._with_connection(read_postgres)


def _text(value: object) -> str:
    # The SQLite store writes JSON documents as UTF-8 blobs.
    return value.decode() if isinstance(value, bytes) else str(value)


def _row(columns: tuple[object, ...], audience: list[str]) -> LiveRow:
    position, work_order_id, event_type, event_json, state_json, assignee = columns
    return LiveRow(
        position=int(position),  # type: ignore[call-overload]
        work_order_id=str(work_order_id),
        type=str(event_type),
        event_json=_text(event_json),
        state_json=None if state_json is None else _text(state_json),
        assignee=None if assignee is None else str(assignee),
        audience=frozenset(audience),
    )
