"""The database side of attachment blobs: one row per hash, its uploaders, and the download check.

The bytes live in the blob store (server/blobs); these tables record what was
declared, whether the bytes are stored, and who sent them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from typing import TYPE_CHECKING, Union

import asyncpg

if TYPE_CHECKING:
    from .postgres import PostgresStore
    from .sqlite import SQLiteStore

UPLOADING = "uploading"
STORED = "stored"

# Event types whose payload field `sha256` references a blob.
BLOB_EVENT_TYPES = ("attachment_added", "signature_captured")


@dataclasses.dataclass(frozen=True)
class BlobRecord:
    sha256: str
    size_bytes: int
    content_type: str
    status: str
    created_by: str

    @property
    def stored(self) -> bool:
        return self.status == STORED


class SQLiteBlobIndex:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def get(self, sha256: str) -> BlobRecord | None:
        def read(db: sqlite3.Connection) -> BlobRecord | None:
            row = db.execute(
                "SELECT sha256, size_bytes, content_type, status, created_by FROM blobs WHERE sha256 = ?", [sha256]
            ).fetchone()
            return BlobRecord(*row) if row else None

        return await self._store._run(read)

    async def create(self, record: BlobRecord, now: dt.datetime) -> BlobRecord:
        """Insert the record unless a row for its hash exists, and return the row that is stored."""

        def write(db: sqlite3.Connection) -> BlobRecord:
            db.execute(
                "INSERT INTO blobs (sha256, size_bytes, content_type, status, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                [record.sha256, record.size_bytes, record.content_type, UPLOADING, record.created_by, now.isoformat()],
            )
            row = db.execute(
                "SELECT sha256, size_bytes, content_type, status, created_by FROM blobs WHERE sha256 = ?",
                [record.sha256],
            ).fetchone()
            return BlobRecord(*row)

        return await self._store._run(write)

    async def mark_stored(self, sha256: str, subject: str, now: dt.datetime) -> None:
        def write(db: sqlite3.Connection) -> None:
            # The connection is in autocommit mode, so the two writes get an explicit transaction.
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE blobs SET status = ?, stored_at = coalesce(stored_at, ?) WHERE sha256 = ?",
                [STORED, now.isoformat(), sha256],
            )
            db.execute(
                "INSERT INTO blob_uploaders (sha256, subject, uploaded_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sha256, subject) DO NOTHING",
                [sha256, subject, now.isoformat()],
            )
            db.execute("COMMIT")

        await self._store._run(write)

    async def engineer_may_read(self, sha256: str, subject: str, engineer_id: str | None) -> bool:
        """Return whether the subject uploaded the blob or an order assigned to the engineer references it."""

        def read(db: sqlite3.Connection) -> bool:
            uploaded = db.execute(
                "SELECT 1 FROM blob_uploaders WHERE sha256 = ? AND subject = ?", [sha256, subject]
            ).fetchone()
            if uploaded or engineer_id is None:
                return bool(uploaded)
            referenced = db.execute(
                "SELECT 1 FROM work_orders_current w JOIN events e ON e.work_order_id = w.work_order_id"
                " WHERE w.engineer_id = ? AND e.type IN (?, ?)"
                " AND json_extract(CAST(e.event AS TEXT), '$.payload.sha256') = ? LIMIT 1",
                [engineer_id, *BLOB_EVENT_TYPES, sha256],
            ).fetchone()
            return referenced is not None

        return await self._store._run(read)


class PostgresBlobIndex:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def get(self, sha256: str) -> BlobRecord | None:
        async def read(db: asyncpg.Connection) -> BlobRecord | None:
            row = await db.fetchrow(
                "SELECT sha256, size_bytes, content_type, status, created_by FROM blobs WHERE sha256 = $1", sha256
            )
            return BlobRecord(*row) if row else None

        return await self._store._with_connection(read)

    async def create(self, record: BlobRecord, now: dt.datetime) -> BlobRecord:
        """Insert the record unless a row for its hash exists, and return the row that is stored."""

        async def write(db: asyncpg.Connection) -> BlobRecord:
            row = await db.fetchrow(
                "WITH inserted AS ("
                " INSERT INTO blobs (sha256, size_bytes, content_type, status, created_by, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING"
                " RETURNING sha256, size_bytes, content_type, status, created_by)"
                " SELECT * FROM inserted UNION ALL"
                " SELECT sha256, size_bytes, content_type, status, created_by FROM blobs WHERE sha256 = $1"
                " LIMIT 1",
                record.sha256,
                record.size_bytes,
                record.content_type,
                UPLOADING,
                record.created_by,
                now,
            )
            return BlobRecord(*row)

        return await self._store._with_connection(write)

    async def mark_stored(self, sha256: str, subject: str, now: dt.datetime) -> None:
        async def write(db: asyncpg.Connection) -> None:
            async with db.transaction():
                await db.execute(
                    "UPDATE blobs SET status = $1, stored_at = coalesce(stored_at, $2) WHERE sha256 = $3",
                    STORED,
                    now,
                    sha256,
                )
                await db.execute(
                    "INSERT INTO blob_uploaders (sha256, subject, uploaded_at) VALUES ($1, $2, $3)"
                    " ON CONFLICT (sha256, subject) DO NOTHING",
                    sha256,
                    subject,
                    now,
                )

        await self._store._with_connection(write)

    async def engineer_may_read(self, sha256: str, subject: str, engineer_id: str | None) -> bool:
        """Return whether the subject uploaded the blob or an order assigned to the engineer references it."""

        async def read(db: asyncpg.Connection) -> bool:
            return bool(
                await db.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM blob_uploaders WHERE sha256 = $1 AND subject = $2)"
                    " OR EXISTS (SELECT 1 FROM events e JOIN work_orders_current w ON w.work_order_id = e.work_order_id"
                    " WHERE w.engineer_id = $3 AND e.type = ANY($4::text[])"
                    " AND e.event->'payload'->>'sha256' = $1)",
                    sha256,
                    subject,
                    engineer_id,
                    list(BLOB_EVENT_TYPES),
                )
            )

        return await self._store._with_connection(read)


BlobIndex = Union[SQLiteBlobIndex, PostgresBlobIndex]


def blob_index_for(store: SQLiteStore | PostgresStore) -> BlobIndex:
    from .postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresBlobIndex(store)
    return SQLiteBlobIndex(store)
