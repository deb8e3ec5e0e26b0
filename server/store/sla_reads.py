"""Reads that SLA evaluation needs: one order's event stream and the open orders.

They live outside the store classes so the SLA code does not grow the two
store modules; both functions dispatch on the store type.
"""

from __future__ import annotations

import sqlite3

import asyncpg
import msgspec

from shared_schema import OPEN_STATES, RecordedEvent, WorkOrderState

from .postgres import PostgresStore
from .sqlite import SQLiteStore
from ..upcasting import decode_recorded_event

_decode_event = decode_recorded_event
_decode_state = msgspec.json.Decoder(WorkOrderState).decode
_OPEN_STATUSES = [status.value for status in OPEN_STATES]


async def read_stream(store: SQLiteStore | PostgresStore, work_order_id: str) -> list[RecordedEvent]:
    """Return the accepted events of one order in stream order."""
    if isinstance(store, SQLiteStore):

        def read(db: sqlite3.Connection) -> list[RecordedEvent]:
            rows = db.execute(
                "SELECT event FROM events WHERE work_order_id = ? ORDER BY stream_version", (work_order_id,)
            ).fetchall()
            return [_decode_event(row[0]) for row in rows]

        return await store._run(read)

    async def read_postgres(db: asyncpg.Connection) -> list[RecordedEvent]:
        rows = await db.fetch(
            "SELECT event::text FROM events WHERE work_order_id = $1 ORDER BY stream_version", work_order_id
        )
        return [_decode_event(row[0]) for row in rows]

    return await store._with_connection(read_postgres)


async def list_open_work_orders(store: SQLiteStore | PostgresStore) -> list[WorkOrderState]:
    """Return every order in an open state (new to on_hold), sorted by id."""
    if isinstance(store, SQLiteStore):
        placeholders = ", ".join("?" for _ in _OPEN_STATUSES)

        def read(db: sqlite3.Connection) -> list[WorkOrderState]:
            rows = db.execute(
                f"SELECT state FROM work_orders_current WHERE status IN ({placeholders}) ORDER BY work_order_id",
                _OPEN_STATUSES,
            ).fetchall()
            return [_decode_state(row[0]) for row in rows]

        return await store._run(read)

    async def read_postgres(db: asyncpg.Connection) -> list[WorkOrderState]:
        rows = await db.fetch(
            "SELECT state::text FROM work_orders_current WHERE status = ANY($1::text[]) ORDER BY work_order_id",
            _OPEN_STATUSES,
        )
        return [_decode_state(row[0]) for row in rows]

    return await store._with_connection(read_postgres)
