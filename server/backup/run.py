"""The work behind `csdp backup FILE` and `csdp restore FILE`, with progress bars on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import structlog

from ..config import Settings
from ..projections.console import run_rebuild
from ..projections.names import PROJECTIONS
from ..projections.run import RebuildResult
from ..store import PostgresStore, create_store
from .archive import BackupError, BackupReader, BackupWriter
from .stores import backup_postgres, backup_sqlite, restore_postgres, restore_sqlite

DEFAULT_BATCH_SIZE = 2000

log = structlog.get_logger("csdp.backup")


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    counts: dict[str, int]
    schema_version: int
    source: str
    rebuild: RebuildResult


@contextlib.contextmanager
def _row_bar(description: str, console: Console) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Show a bar of rows done; yield (set the total, add rows done)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # The bar is drawn at the first call, so an error found before any row (such as a store
    # that is not empty) is printed without a bar above it.
    bar = Progress(*columns, console=console)
    task: TaskID | None = None

    def started() -> TaskID:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(description, total=None)
        return task

    try:
        yield (lambda total: bar.update(started(), total=total)), (lambda rows: bar.advance(started(), rows))
    finally:
        if task is not None:
            bar.stop()


def run_backup(settings: Settings, path: Path, batch_size: int, console: Console) -> BackupWriter:
    """Write a backup of the configured store to `path`, which must not exist yet; return the finished writer."""
    if path.exists():
        raise BackupError(f"{path} already exists; give a new file name so no backup is overwritten")
    if not path.parent.is_dir():
        raise BackupError(f"the folder {path.parent} does not exist; create it or give another path")
    store = create_store(settings)
    expected = store.expected_schema_version
    source = settings.store_kind

    def open_writer(version: int) -> BackupWriter:
        return BackupWriter(path, source=source, schema_version=version)

    with _row_bar("backup", console) as (start, advance):
        if isinstance(store, PostgresStore):
            writer = asyncio.run(
                backup_postgres(store.dsn, store.description, open_writer, expected, batch_size, start, advance)
            )
        else:
            writer = backup_sqlite(store.path, open_writer, expected, batch_size, start, advance)
    writer.finish()
    return writer


def run_restore(settings: Settings, path: Path, batch_size: int, console: Console) -> RestoreResult:
    """Check the backup whole, load it into the empty configured store, then rebuild every projection."""
    reader = BackupReader(path)
    with console.status(f"checking {path}"):
        counts = reader.verify()
    store = create_store(settings)
    found, expected = reader.header["schema_version"], store.expected_schema_version
    if found > expected:
        raise BackupError(
            f"{path} was written at schema version {found}, newer than this csdp's {expected}; "
            "restore it with a csdp release at least as new as the one that wrote it"
        )

    async def migrate() -> None:
        await store.open(migrate=True)
        await store.close()

    asyncio.run(migrate())
    total = sum(counts.values())
    with _row_bar("restore", console) as (start, advance):
        if isinstance(store, PostgresStore):
            asyncio.run(restore_postgres(store.dsn, store.description, reader.rows(), batch_size, lambda: start(total), advance))
        else:
            restore_sqlite(store.path, reader.rows(), batch_size, lambda: start(total), advance)
    try:
        rebuild = run_rebuild(settings, PROJECTIONS, batch_size, console)
    except Exception as exc:  # noqa: BLE001 - any failure here leaves the same state, which the message explains
        log.error("restore_rebuild_failed", backup=str(path), store=store.description, error=repr(exc))
        raise BackupError(
            f"the {total} rows of {path} were loaded into {store.description}, but rebuilding the projections "
            f"failed: {type(exc).__name__}: {exc}. The store now contains the log without its projections, so do "
            "not start a server on it: empty it (drop and create the database, or delete the SQLite file) and "
            "restore again, or fix the cause and run csdp projections rebuild"
        ) from None
    return RestoreResult(counts=counts, schema_version=found, source=str(reader.header.get("source")), rebuild=rebuild)
