"""Catalog events and their projection tables on the embedded SQLite store.

A request is one `BEGIN IMMEDIATE` transaction, so SQLite's writer lock
serialises catalog changes and `max(id) + 1` gives gap-free ids in commit order.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import msgspec

from shared_schema import Actor

from ..catalog.commands import CheckedCommand
from ..catalog.fold import ENTITY_TABLES, CatalogEvent, Documents, RecordedChange, empty_documents, table_row
from ..catalog.plan import plan_catalog, referenced_ids
from .sqlite import SQLiteStore

_encode = msgspec.json.encode
_EVENT_COLUMNS = "id, recorded_at, actor, actor_role, device_id, correlation_id, entity, entity_id, type, payload"


class SQLiteCatalog:
    """Catalog operations of an open `SQLiteStore`, run on its connection and lock."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def record(
        self,
        actor: Actor,
        commands: list[CheckedCommand],
        *,
        device_id: str | None,
        correlation_id: str | None,
        recorded_at: dt.datetime,
    ) -> list[RecordedChange]:
        """Check and append `commands` and update the catalog tables in one transaction; raise CommandError on the first failure."""

        def write(db: sqlite3.Connection) -> list[RecordedChange]:
            db.execute("BEGIN IMMEDIATE")
            documents = empty_documents()
            for entity, ids in referenced_ids(commands).items():
                documents[entity].update(_load_documents(db, entity, sorted(ids)))
            first_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM catalog_events").fetchone()[0]
            plan = plan_catalog(
                documents,
                commands,
                actor=actor,
                device_id=device_id,
                correlation_id=correlation_id,
                recorded_at=recorded_at,
                first_id=first_id,
            )
            db.executemany(
                f"INSERT INTO catalog_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [event_row(event) for event in plan.events],
            )
            for (entity, _), document in plan.changed.items():
                upsert_document(db, entity, document)
            db.execute("COMMIT")
            return [
                RecordedChange(id=e.id, type=e.type, entity=e.entity, entity_id=e.entity_id, recorded_at=e.recorded_at)
                for e in plan.events
            ]

        return await self._store._run(write)

    async def page(self, entity: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Return up to `limit + 1` documents of `entity` with ids after `after`, in id order."""
        table, key, _ = ENTITY_TABLES[entity]

        def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = db.execute(
                f"SELECT document FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (after or "", limit + 1)
            ).fetchall()
            return [msgspec.json.decode(row[0]) for row in rows]

        return await self._store._run(read)

    async def get(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        return (await self._store._run(lambda db: _load_documents(db, entity, [entity_id]))).get(entity_id)

    # -- rebuild and verify --------------------------------------------------

    async def hold_writes(self) -> None:
        """Do nothing: the caller's `BEGIN IMMEDIATE` already holds the writer lock that catalog writes need."""

    async def read_events(self) -> list[CatalogEvent]:
        """Return every catalog event in id order."""

        def read(db: sqlite3.Connection) -> list[CatalogEvent]:
            rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM catalog_events ORDER BY id").fetchall()
            return [_event_from_row(row) for row in rows]

        return await self._store._run(read)

    async def table_rows(self, entity: str) -> list[tuple[Any, ...]]:
        """Return the rows of the entity's table in key order, as `table_row` builds them."""
        table, key, columns = ENTITY_TABLES[entity]
        sql = f"SELECT {key}, {', '.join(columns)}, document FROM {table} ORDER BY {key}"
        return await self._store._run(lambda db: [tuple(row) for row in db.execute(sql).fetchall()])

    async def replace_table(self, entity: str, documents: Documents) -> None:
        """Replace the rows of the entity's table, inside the caller's transaction."""
        table, _, _ = ENTITY_TABLES[entity]

        def replace(db: sqlite3.Connection) -> None:
            db.execute(f"DELETE FROM {table}")
            for document in documents[entity].values():
                upsert_document(db, entity, document)

        await self._store._run(replace)


def event_row(event: CatalogEvent) -> tuple[Any, ...]:
    return (
        event.id,
        event.recorded_at.astimezone(dt.timezone.utc).isoformat(),
        event.actor,
        event.actor_role,
        event.device_id,
        event.correlation_id,
        event.entity,
        event.entity_id,
        event.type,
        _encode(event.payload),
    )


def upsert_document(db: sqlite3.Connection, entity: str, document: dict[str, Any]) -> None:
    table, key, columns = ENTITY_TABLES[entity]
    names = [key, *columns, "document"]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    db.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}",
        table_row(entity, document),
    )


def _load_documents(db: sqlite3.Connection, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    table, key, _ = ENTITY_TABLES[entity]
    documents = {}
    # A request has at most 500 commands, so at most 500 ids per entity, below SQLite's smallest default
    # limit of 999 variables per statement.
    if ids:
        marks = ", ".join("?" for _ in ids)
        for entity_id, raw in db.execute(f"SELECT {key}, document FROM {table} WHERE {key} IN ({marks})", ids):
            documents[entity_id] = msgspec.json.decode(raw)
    return documents


def _event_from_row(row: tuple[Any, ...]) -> CatalogEvent:
    return CatalogEvent(
        id=row[0],
        recorded_at=dt.datetime.fromisoformat(row[1]),
        actor=row[2],
        actor_role=row[3],
        device_id=row[4],
        correlation_id=row[5],
        entity=row[6],
        entity_id=row[7],
        type=row[8],
        payload=msgspec.json.decode(row[9]),
    )
