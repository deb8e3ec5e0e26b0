"""Numbered schema migrations of the device's SQLite file, tracked in `PRAGMA user_version`.

A file written before migrations existed has user_version 0 and the tables
of migration 1, which is why migration 1 uses `IF NOT EXISTS`. To change the
layout, append a migration with the next number: never edit one that has
shipped, because devices in the field already ran it.
"""

from __future__ import annotations

import dataclasses
import sqlite3


@dataclasses.dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "outbox, confirmed work orders and sync metadata",
        (
            "CREATE TABLE IF NOT EXISTS outbox ("
            " sequence INTEGER PRIMARY KEY AUTOINCREMENT,"
            " client_event_id TEXT NOT NULL UNIQUE,"
            " work_order_id TEXT NOT NULL,"
            " status TEXT NOT NULL,"
            " event TEXT NOT NULL,"
            " decision TEXT,"
            " recorded_at TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, sequence)",
            "CREATE TABLE IF NOT EXISTS confirmed_work_orders ("
            " work_order_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    Migration(
        2,
        "local rejections (403) and per-order outbox lookups",
        (
            # Why the device marked an event rejected without a server decision, as JSON {reason, message}.
            "ALTER TABLE outbox ADD COLUMN local_rejection TEXT",
            "CREATE INDEX outbox_work_order ON outbox (work_order_id, sequence)",
        ),
    ),
    Migration(
        3,
        "attachment upload queue",
        (
            "CREATE TABLE attachment_uploads ("
            " sha256 TEXT PRIMARY KEY,"
            " kind TEXT NOT NULL,"
            " content_type TEXT NOT NULL,"
            " size_bytes INTEGER NOT NULL,"
            " state TEXT NOT NULL,"
            " uploaded_bytes INTEGER NOT NULL DEFAULT 0,"
            " attempts INTEGER NOT NULL DEFAULT 0,"
            " last_error TEXT,"
            " next_attempt_at REAL NOT NULL DEFAULT 0,"
            " added_at TEXT NOT NULL,"
            " uploaded_at TEXT)",
            "CREATE INDEX attachment_uploads_state ON attachment_uploads (state, next_attempt_at)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


class NewerFileError(RuntimeError):
    """The file was written by a newer SDK, whose layout this one cannot read safely."""


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the file to LATEST_VERSION and return the version it had before.

    The connection must be in autocommit mode (`isolation_level=None`).
    Each migration runs in its own `BEGIN IMMEDIATE` transaction and reads
    the version again inside it, so two processes that open a new file at
    once apply each migration exactly once.
    """
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found > LATEST_VERSION:
        raise NewerFileError(
            f"the SDK file has layout version {found}, newer than this SDK's {LATEST_VERSION}; "
            "update the app or open a different file"
        )
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = connection.execute("PRAGMA user_version").fetchone()[0]
            if current < migration.version:
                for statement in migration.statements:
                    connection.execute(statement)
                # PRAGMA takes no parameters; the version is an int from the table above.
                connection.execute(f"PRAGMA user_version = {int(migration.version)}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return found
