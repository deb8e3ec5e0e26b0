"""Reads behind the engineer board, one module for both stores."""

from __future__ import annotations

import datetime as dt
import sqlite3

import asyncpg
import msgspec

from shared_schema import WorkOrderState

from ..store import PostgresStore, Store
from ..store.catalog import catalog_of

_decode_state = msgspec.json.Decoder(WorkOrderState).decode

# Orders that still occupy or wait for their engineer.
_OPEN_ASSIGNED = (
    "SELECT state{cast} FROM work_orders_current WHERE engineer_id IS NOT NULL"
    " AND status NOT IN ('completed', 'closed', 'cancelled') ORDER BY work_order_id"
)
_LAST_UPDATES = (
    "SELECT engineer_id, max(updated_at) FROM work_orders_current WHERE engineer_id IS NOT NULL GROUP BY engineer_id"
)
# Every engineer who was ever assignee of an order: the pull feed's audience contains the assignee
# before and after each event.
_ASSIGNED_ENGINEERS = "SELECT DISTINCT engineer_id FROM event_audience"


class BoardInputs(msgspec.Struct, kw_only=True):
    catalog: list[dict[str, object]]
    assigned_engineers: list[str]
    open_states: list[WorkOrderState]
    last_updates: dict[str, dt.datetime]


# Engineer documents are read from the catalog in pages of this many.
_CATALOG_PAGE = 1000


async def _engineer_documents(store: Store) -> list[dict[str, object]]:
    """Return every engineer document of the catalog, in id order."""
    catalog = catalog_of(store)
    documents: list[dict[str, object]] = []
    after: str | None = None
    while True:
        page = await catalog.page("engineer", after=after, limit=_CATALOG_PAGE)
        documents.extend(page[:_CATALOG_PAGE])
        if len(page) <= _CATALOG_PAGE:
            return documents
        after = str(page[_CATALOG_PAGE - 1]["engineer_id"])


async def read_board_inputs(store: Store) -> BoardInputs:
    catalog = await _engineer_documents(store)
    if isinstance(store, PostgresStore):

        async def read_postgres(db: asyncpg.Connection) -> BoardInputs:
            # One snapshot for the three reads.
            async with db.transaction(isolation="repeatable_read", readonly=True):
                states = [_decode_state(row[0]) for row in await db.fetch(_OPEN_ASSIGNED.format(cast="::text"))]
                updates = {row[0]: row[1] for row in await db.fetch(_LAST_UPDATES)}
                engineers = [row[0] for row in await db.fetch(_ASSIGNED_ENGINEERS)]
            return BoardInputs(catalog=catalog, assigned_engineers=engineers, open_states=states, last_updates=updates)

        return await store._with_connection(read_postgres)

    def read_sqlite(db: sqlite3.Connection) -> BoardInputs:
        db.execute("BEGIN")
        try:
            states = [_decode_state(row[0]) for row in db.execute(_OPEN_ASSIGNED.format(cast="")).fetchall()]
            updates = {
                row[0]: dt.datetime.fromisoformat(row[1]) for row in db.execute(_LAST_UPDATES).fetchall() if row[1]
            }
            engineers = [row[0] for row in db.execute(_ASSIGNED_ENGINEERS).fetchall()]
        finally:
            db.execute("COMMIT")
        return BoardInputs(catalog=catalog, assigned_engineers=engineers, open_states=states, last_updates=updates)

    return await store._run(read_sqlite)
