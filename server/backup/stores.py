"""Reading a consistent snapshot of the backed-up tables from, and loading them into, either store.

Both directions stream. A backup reads each table in pages of `batch_size`
rows from one read-only snapshot: an SQLite read transaction or a PostgreSQL
REPEATABLE READ transaction. A restore inserts pages of rows inside one
transaction, so an error leaves the target store as empty as it was.
"""

from __future__ import annotations

import asyncio
import binascii
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from ..store.errors import StoreUnavailable
from .archive import BackupError, BackupWriter
from .tables import (
    POSTGRES_CONVERTERS,
    SQLITE_CONVERTERS,
    TABLES,
    Converter,
    InvalidValue,
    Kind,
    Table,
    portable_value,
    row_converter,
)

RowsCallback = Callable[[int], None]


class StoreNotEmpty(BackupError):
    """The restore target already contains records."""


# -- backup --------------------------------------------------------------------


def _select(table: Table) -> str:
    return f"SELECT {', '.join(table.column_names)} FROM {table.name} ORDER BY {table.order_by}"


def _portable(table: Table, rows: Iterable[Any]) -> list[list[Any]]:
    return [[portable_value(column.kind, value) for column, value in zip(table.columns, row)] for row in rows]


def _schema_mismatch(store: str, found: int, expected: int) -> BackupError:
    return BackupError(
        f"{store} has schema version {found}, this csdp expects {expected}; run csdp migrate on it before a backup"
    )


def backup_sqlite(
    path: Path, open_writer: Callable[[int], BackupWriter], expected_version: int, batch_size: int,
    on_start: Callable[[int], None], on_rows: RowsCallback,
) -> BackupWriter:
    """Write every backed-up table of the SQLite file at `path` from one read transaction."""
    if not path.is_file():
        raise StoreUnavailable(f"no SQLite database at {path}; set CSDP_VAR_DIR or CSDP_DATABASE_URL to the server's store")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot open the SQLite file {path}: {exc}") from None
    try:
        connection.execute("PRAGMA busy_timeout = 10000")
        # One read transaction, so every SELECT below reads the same snapshot while the server goes on writing.
        connection.execute("BEGIN")
        migrated = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        version = 0
        if migrated:
            version = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
        if version != expected_version:
            raise _schema_mismatch(f"sqlite:///{path}", version, expected_version)
        on_start(sum(connection.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0] for table in TABLES))
        writer = open_writer(version)
        try:
            for table in TABLES:
                cursor = connection.execute(_select(table))
                while rows := cursor.fetchmany(batch_size):
                    writer.write_rows(table, _portable(table, rows))
                    on_rows(len(rows))
        except BaseException:
            writer.abort()
            raise
        connection.execute("COMMIT")
        return writer
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"reading the SQLite file {path} failed: {exc}") from None
    finally:
        connection.close()


async def backup_postgres(
    dsn: str, description: str, open_writer: Callable[[int], BackupWriter], expected_version: int, batch_size: int,
    on_start: Callable[[int], None], on_rows: RowsCallback,
) -> BackupWriter:
    """Write every backed-up table of the PostgreSQL database from one REPEATABLE READ snapshot."""
    connection = await _connect(dsn, description)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            version = 0
            if await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                version = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
            if version != expected_version:
                raise _schema_mismatch(description, version, expected_version)
            total = 0
            for table in TABLES:
                total += await connection.fetchval(f"SELECT count(*) FROM {table.name}")
            on_start(total)
            writer = open_writer(version)
            try:
                for table in TABLES:
                    page: list[Any] = []
                    async for record in connection.cursor(_select(table), prefetch=batch_size):
                        page.append(tuple(record))
                        if len(page) == batch_size:
                            writer.write_rows(table, _portable(table, page))
                            on_rows(len(page))
                            page = []
                    if page:
                        writer.write_rows(table, _portable(table, page))
                        on_rows(len(page))
            except BaseException:
                writer.abort()
                raise
            return writer
    except asyncpg.PostgresError as exc:
        raise StoreUnavailable(f"reading {description} failed: {exc}") from None
    finally:
        await connection.close()


async def _connect(dsn: str, description: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {description}: {exc}") from None


# -- restore -------------------------------------------------------------------


def _converted(table: Table, page: list[list[Any]], converters: dict[Kind, Converter]) -> list[tuple[Any, ...]]:
    """Convert a page of file rows for a store, raising BackupError that names the first row that does not fit."""
    convert = row_converter(table, converters)
    rows = []
    for row in page:
        try:
            rows.append(convert(row))
        except (InvalidValue, ValueError, binascii.Error) as exc:
            key = row[table.column_names.index(table.order_by)]
            raise BackupError(f"the backup's {table.name} row {table.order_by}={key!r} has an invalid value: {exc}") from None
    return rows


def _pages(rows: Iterator[tuple[Table, list[Any]]], batch_size: int) -> Iterator[tuple[Table, list[list[Any]]]]:
    """Group consecutive rows of one table into pages of at most `batch_size`."""
    current: Table | None = None
    page: list[list[Any]] = []
    for table, row in rows:
        if (table is not current or len(page) == batch_size) and page:
            assert current is not None
            yield current, page
            page = []
        current = table
        page.append(row)
    if page and current is not None:
        yield current, page


def _not_empty(store: str, counts: dict[str, int]) -> StoreNotEmpty:
    contents = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    return StoreNotEmpty(
        f"the store {store} is not empty (it holds {contents}); restore into a new, empty database or SQLite file"
    )


def new_epoch() -> str:
    """Return a random log epoch, so a restored log never shares one with the log that was backed up."""
    return secrets.token_hex(16)


# The restored log gets a new epoch, and its base position is its last event: devices
# that synced from the backed-up log keep their accepted events up to there.
_RENEW_IDENTITY = (
    "UPDATE log_identity SET epoch = {epoch},"
    " base_position = (SELECT coalesce(max(global_position), 0) FROM events)"
)


def restore_sqlite(
    path: Path, rows: Iterator[tuple[Table, list[Any]]], batch_size: int, on_start: Callable[[], None], on_rows: RowsCallback
) -> None:
    """Insert the backup's rows into the migrated SQLite file at `path` in one transaction.

    `on_start` is called once the store is found empty, before the first row.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("BEGIN IMMEDIATE")
        counts = {table.name: connection.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0] for table in TABLES}
        if any(counts.values()):
            raise _not_empty(f"sqlite:///{path}", counts)
        on_start()
        for table, page in _pages(rows, batch_size):
            placeholders = ", ".join("?" for _ in table.columns)
            connection.executemany(
                f"INSERT INTO {table.name} ({', '.join(table.column_names)}) VALUES ({placeholders})",
                _converted(table, page, SQLITE_CONVERTERS),
            )
            on_rows(len(page))
        connection.execute(_RENEW_IDENTITY.format(epoch="?"), [new_epoch()])
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"loading the backup into sqlite:///{path} failed: {exc}") from None
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()


async def restore_postgres(
    dsn: str,
    description: str,
    rows: Iterator[tuple[Table, list[Any]]],
    batch_size: int,
    on_start: Callable[[], None],
    on_rows: RowsCallback,
) -> None:
    """Copy the backup's rows into the migrated PostgreSQL database in one transaction.

    `on_start` is called once the store is found empty, before the first row.
    """
    connection = await _connect(dsn, description)
    try:
        async with connection.transaction():
            # Appends wait for the restore, so no server can write between the emptiness check and the commit.
            await connection.execute("LOCK TABLE position_counter IN EXCLUSIVE MODE")
            counts = {table.name: await connection.fetchval(f"SELECT count(*) FROM {table.name}") for table in TABLES}
            if any(counts.values()):
                raise _not_empty(description, counts)
            on_start()
            for table, page in _pages(rows, batch_size):
                records = _converted(table, page, POSTGRES_CONVERTERS)
                await connection.copy_records_to_table(table.name, records=records, columns=table.column_names)
                on_rows(len(page))
            # The counters that ingestion, the audit and the catalog continue from.
            await connection.execute(
                "UPDATE position_counter SET last_position = (SELECT coalesce(max(global_position), 0) FROM events)"
            )
            await connection.execute(_RENEW_IDENTITY.format(epoch="$1"), new_epoch())
            for table, column in (("decisions", "decision_id"), ("denied_requests", "denial_id")):
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" (SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)"
                )
    except asyncpg.PostgresError as exc:
        raise BackupError(f"loading the backup into {description} failed: {exc}") from None
    finally:
        await connection.close()
