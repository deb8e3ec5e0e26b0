"""Catalog events and their projection tables on the PostgreSQL store.

A request is one transaction that first takes a transaction-level advisory
lock for the whole catalog. Catalog changes are rare, so serialising them
costs little, and it makes `max(id) + 1` gap-free ids in commit order and
keeps the checks (id registered twice, unknown site) free of races.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from shared_schema import Actor

from ..catalog.commands import CheckedCommand
from ..catalog.fold import ENTITY_TABLES, CatalogEvent, Documents, RecordedChange, empty_documents, table_row
from ..catalog.plan import plan_catalog, referenced_ids
from .postgres import PostgresStore

_EVENT_COLUMNS = "id, recorded_at, actor, actor_role, device_id, correlation_id, entity, entity_id, type, payload"
CATALOG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('csdp_catalog'))"


def _text(value: object) -> str:
    return msgspec.json.encode(value).decode()


class PostgresCatalog:
    """Catalog operations of an open `PostgresStore`, or of one connection for rebuild and verify."""

    def __init__(self, store: PostgresStore | None = None, *, connection: asyncpg.Connection | None = None) -> None:
        self._store = store
        self._connection = connection

    async def _with_connection(self, work: Any) -> Any:
        if self._connection is not None:
            return await work(self._connection)
        assert self._store is not None
        return await self._store._with_connection(work)

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

        async def write(db: asyncpg.Connection) -> list[RecordedChange]:
            async with db.transaction():
                await db.execute(CATALOG_LOCK)
                documents = empty_documents()
                for entity, ids in referenced_ids(commands).items():
                    documents[entity].update(await _load_documents(db, entity, sorted(ids)))
                first_id = await db.fetchval("SELECT coalesce(max(id), 0) + 1 FROM catalog_events")
                plan = plan_catalog(
                    documents,
                    commands,
                    actor=actor,
                    device_id=device_id,
                    correlation_id=correlation_id,
                    recorded_at=recorded_at,
                    first_id=first_id,
                )
                events = plan.events
                await db.execute(
                    f"INSERT INTO catalog_events ({_EVENT_COLUMNS})"
                    " SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],"
                    " $6::text[], $7::text[], $8::text[], $9::text[], $10::json[])",
                    [e.id for e in events],
                    [e.recorded_at for e in events],
                    [e.actor for e in events],
                    [e.actor_role for e in events],
                    [e.device_id for e in events],
                    [e.correlation_id for e in events],
                    [e.entity for e in events],
                    [e.entity_id for e in events],
                    [e.type for e in events],
                    [_text(e.payload) for e in events],
                )
                for (entity, _), document in plan.changed.items():
                    await _upsert_document(db, entity, document)
            return [
                RecordedChange(id=e.id, type=e.type, entity=e.entity, entity_id=e.entity_id, recorded_at=e.recorded_at)
                for e in events
            ]

        return await self._with_connection(write)

    async def page(self, entity: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Return up to `limit + 1` documents of `entity` with ids after `after`, in id order."""
        table, key, _ = ENTITY_TABLES[entity]

        async def read(db: asyncpg.Connection) -> list[dict[str, Any]]:
            rows = await db.fetch(
                f"SELECT document::text FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2", after or "", limit + 1
            )
            return [msgspec.json.decode(row[0]) for row in rows]

        return await self._with_connection(read)

    async def get(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        async def read(db: asyncpg.Connection) -> dict[str, dict[str, Any]]:
            return await _load_documents(db, entity, [entity_id])

        return (await self._with_connection(read)).get(entity_id)

    # -- rebuild and verify --------------------------------------------------

    async def hold_writes(self) -> None:
        """Make catalog requests wait until the caller's transaction ends."""
        await self._with_connection(lambda db: db.execute(CATALOG_LOCK))

    async def read_events(self) -> list[CatalogEvent]:
        """Return every catalog event in id order."""

        async def read(db: asyncpg.Connection) -> list[CatalogEvent]:
            rows = await db.fetch(
                "SELECT id, recorded_at, actor, actor_role, device_id, correlation_id, entity, entity_id, type,"
                " payload::text FROM catalog_events ORDER BY id"
            )
            return [
                CatalogEvent(
                    id=row[0],
                    recorded_at=row[1],
                    actor=row[2],
                    actor_role=row[3],
                    device_id=row[4],
                    correlation_id=row[5],
                    entity=row[6],
                    entity_id=row[7],
                    type=row[8],
                    payload=msgspec.json.decode(row[9]),
                )
                for row in rows
            ]

        return await self._with_connection(read)

    async def table_rows(self, entity: str) -> list[tuple[Any, ...]]:
        """Return the rows of the entity's table in key order, as `table_row` builds them."""
        table, key, columns = ENTITY_TABLES[entity]
        sql = f"SELECT {key}, {', '.join(columns)}, document::text FROM {table} ORDER BY {key}"

        async def read(db: asyncpg.Connection) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await db.fetch(sql)]

        return await self._with_connection(read)

    async def replace_table(self, entity: str, documents: Documents) -> None:
        """Replace the rows of the entity's table, inside the caller's transaction."""
        table, _, _ = ENTITY_TABLES[entity]

        async def replace(db: asyncpg.Connection) -> None:
            await db.execute(f"DELETE FROM {table}")
            for document in documents[entity].values():
                await _upsert_document(db, entity, document)

        await self._with_connection(replace)


async def _upsert_document(db: asyncpg.Connection, entity: str, document: dict[str, Any]) -> None:
    table, key, columns = ENTITY_TABLES[entity]
    names = [key, *columns, "document"]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    marks = ", ".join(f"${index}" for index in range(1, len(names) + 1))
    await db.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}) ON CONFLICT ({key}) DO UPDATE SET {updates}",
        *table_row(entity, document),
    )


async def _load_documents(db: asyncpg.Connection, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    table, key, _ = ENTITY_TABLES[entity]
    rows = await db.fetch(f"SELECT {key}, document::text FROM {table} WHERE {key} = ANY($1::text[])", ids)
    return {row[0]: msgspec.json.decode(row[1]) for row in rows}
