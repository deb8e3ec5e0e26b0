"""The work behind `csdp projections`: open the store, run, draw the progress bar, print the reports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..config import Settings
from ..store import PostgresStore, SQLiteStore, StoreUnavailable, create_store
from .compare import ComparisonReport
from .run import Progress as ReplayProgress
from .run import ProjectionTables, RebuildResult, rebuild_projections, verify_projections


@asynccontextmanager
async def open_projection_tables(settings: Settings) -> AsyncIterator[ProjectionTables]:
    """Open the configured store without migrating it and yield its projection tables.

    Raises StoreError for a store that cannot be reached or whose schema is
    not current, and StoreUnavailable for an SQLite file that does not exist
    (instead of creating an empty one).
    """
    from ..store.postgres_projections import PostgresProjectionTables
    from ..store.sqlite_projections import SQLiteProjectionTables

    store = create_store(settings)
    if isinstance(store, SQLiteStore) and not store.path.exists():
        raise StoreUnavailable(
            f"no SQLite database at {store.path}; set CSDP_VAR_DIR or CSDP_DATABASE_URL to the server's store"
        )
    await store.open(migrate=False)
    try:
        if isinstance(store, PostgresStore):
            async with PostgresProjectionTables.open(store) as tables:
                yield tables
        else:
            yield SQLiteProjectionTables(store)
    finally:
        await store.close()


@contextlib.contextmanager
def _progress_bar(description: str, console: Console) -> Iterator[Callable[[ReplayProgress], None]]:
    """Show a bar of decisions replayed, with the count of events among them; yield its update function."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("decisions, {task.fields[events]} events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=None, events=0)

        def show(progress: ReplayProgress) -> None:
            bar.update(task, completed=progress.decisions, total=progress.total_decisions, events=progress.events)

        yield show


def run_rebuild(settings: Settings, projections: tuple[str, ...], batch_size: int, console: Console) -> RebuildResult:
    async def work() -> RebuildResult:
        async with open_projection_tables(settings) as tables:
            with _progress_bar("rebuild", console) as show:
                return await rebuild_projections(tables, projections, batch_size=batch_size, on_progress=show)

    return asyncio.run(work())


def run_verify(
    settings: Settings, projections: tuple[str, ...], batch_size: int, max_differences: int, console: Console
) -> list[ComparisonReport]:
    async def work() -> list[ComparisonReport]:
        async with open_projection_tables(settings) as tables:
            with _progress_bar("verify", console) as show:
                return await verify_projections(
                    tables, projections, batch_size=batch_size, max_differences=max_differences, on_progress=show
                )

    return asyncio.run(work())


def format_report(report: ComparisonReport) -> list[str]:
    """Return the summary line of one projection and a line per difference kept."""
    if report.equal:
        summary = f"{report.projection}: equal, {report.live_rows} rows"
    else:
        summary = (
            f"{report.projection}: {report.differing_rows} differing rows "
            f"({report.live_rows} live rows, {report.rebuilt_rows} rebuilt rows)"
        )
    lines = [summary]
    for difference in report.differences:
        lines.append(
            f"  {difference.projection} [{difference.key}] {difference.column}:"
            f" live {difference.live}, rebuilt {difference.rebuilt}"
        )
    if report.truncated:
        lines.append(f"  (only the first {len(report.differences)} differences are listed)")
    return lines
