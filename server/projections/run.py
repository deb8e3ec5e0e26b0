"""Rebuild and verify: a scan of the log into scratch tables, then one short transaction per step.

The scan reads the log in batches of `batch_size` decisions (one query per
batch) and writes each batch's rows into scratch tables, without holding
any lock on the live tables. The final transaction then checks that no
decision was committed behind the scan and replays the decisions committed
since. A rebuild then replaces a live projection with its scratch copy while
appends wait, and a verify compares the two copies on one snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .catalog import CatalogTables, catalog_projections, rebuild_catalog, verify_catalog
from .compare import ComparedRows, ComparisonReport, compare_projection
from .replay import LogRow, ProjectionRows, Replayer

DEFAULT_BATCH_SIZE = 2000


class LogChanged(RuntimeError):
    """Decisions were committed behind the scan, so the replay would miss them; running again fixes it."""


class ProjectionTables(ComparedRows, Protocol):
    """Store operations that rebuild and verify projections, all on one connection."""

    catalog: CatalogTables

    async def count_log(self) -> tuple[int, int]:
        """Return the number of decisions and of events."""
        ...

    async def read_log(self, after_decision_id: int, limit: int) -> list[LogRow]:
        """Return up to `limit` decisions with ids above `after_decision_id`, in id order, in one query."""
        ...

    async def count_decisions_up_to(self, decision_id: int) -> int: ...

    async def create_scratch(self, projections: tuple[str, ...]) -> None:
        """Create empty scratch tables for `projections`, replacing any left from an earlier run."""
        ...

    async def write_scratch(self, projections: tuple[str, ...], rows: ProjectionRows) -> None: ...

    async def drop_scratch(self) -> None: ...

    def final_transaction(self, *, hold_ingestion: bool) -> AbstractAsyncContextManager[None]:
        """Open a transaction: with `hold_ingestion`, appends wait until it ends, otherwise it reads one snapshot."""
        ...

    async def replace_live(self, projection: str) -> None:
        """Replace the rows of a live projection with its scratch copy, inside the final transaction."""
        ...


@dataclasses.dataclass(frozen=True)
class Progress:
    decisions: int
    events: int
    total_decisions: int


ProgressCallback = Callable[[Progress], None]


@dataclasses.dataclass
class RebuildResult:
    projections: tuple[str, ...]
    decisions: int
    events: int
    orders: int
    catalog_projections: tuple[str, ...] = ()
    catalog_events: int = 0


class _Scan:
    """The replay state shared by the scan and the catch-up inside each final transaction."""

    def __init__(
        self, tables: ProjectionTables, projections: tuple[str, ...], batch_size: int, on_progress: ProgressCallback
    ) -> None:
        self.tables = tables
        self.projections = projections
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.replayer = Replayer(projections)
        self.total = 0

    async def start(self) -> None:
        self.total, _ = await self.tables.count_log()
        await self.tables.create_scratch(self.projections)
        self.on_progress(Progress(0, 0, self.total))

    async def replay_new_decisions(self) -> None:
        """Replay every decision after the last one replayed, batch by batch, into the scratch tables."""
        while True:
            rows = await self.tables.read_log(self.replayer.last_decision_id, self.batch_size)
            if not rows:
                return
            await self.tables.write_scratch(self.projections, self.replayer.fold(rows))
            self.total = max(self.total, self.replayer.decisions)
            self.on_progress(Progress(self.replayer.decisions, self.replayer.events, self.total))

    async def check_nothing_missed(self) -> None:
        """Raise LogChanged when a decision at or below the last replayed id was committed after the scan passed it.

        On PostgreSQL a decision id is taken at insert and becomes visible at
        commit, so a slow transaction can commit an id below one already read.
        """
        committed = await self.tables.count_decisions_up_to(self.replayer.last_decision_id)
        if committed != self.replayer.decisions:
            raise LogChanged(
                f"{committed - self.replayer.decisions} decision(s) were committed behind the replay "
                "while the server was writing; run the command again"
            )


async def rebuild_projections(
    tables: ProjectionTables,
    projections: tuple[str, ...],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback = lambda progress: None,
) -> RebuildResult:
    """Rebuild `projections` from the log, replacing each live table in one transaction of its own.

    The catalog projections are replaced together, in one transaction that blocks catalog writes meanwhile.
    """
    catalog = catalog_projections(projections)
    catalog_events = 0
    if catalog:
        async with tables.final_transaction(hold_ingestion=True):
            catalog_events = await rebuild_catalog(tables.catalog, catalog)
    projections = tuple(name for name in projections if name not in catalog)
    if not projections:
        return RebuildResult((), 0, 0, 0, catalog, catalog_events)
    scan = _Scan(tables, projections, batch_size, on_progress)
    try:
        await scan.start()
        await scan.replay_new_decisions()
        for projection in projections:
            async with tables.final_transaction(hold_ingestion=True):
                await scan.check_nothing_missed()
                await scan.replay_new_decisions()
                await tables.replace_live(projection)
    finally:
        await tables.drop_scratch()
    replayer = scan.replayer
    return RebuildResult(projections, replayer.decisions, replayer.events, len(replayer.states), catalog, catalog_events)


async def verify_projections(
    tables: ProjectionTables,
    projections: tuple[str, ...],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_differences: int = 20,
    on_progress: ProgressCallback = lambda progress: None,
) -> list[ComparisonReport]:
    """Rebuild `projections` into scratch tables and compare them with the live ones on one snapshot."""
    catalog = catalog_projections(projections)
    catalog_reports: list[ComparisonReport] = []
    if catalog:
        async with tables.final_transaction(hold_ingestion=False):
            catalog_reports = await verify_catalog(tables.catalog, catalog, max_differences=max_differences)
    projections = tuple(name for name in projections if name not in catalog)
    if not projections:
        return catalog_reports
    scan = _Scan(tables, projections, batch_size, on_progress)
    try:
        await scan.start()
        await scan.replay_new_decisions()
        async with tables.final_transaction(hold_ingestion=False):
            await scan.check_nothing_missed()
            await scan.replay_new_decisions()
            return [
                *[
                    await compare_projection(tables, projection, max_differences=max_differences)
                    for projection in projections
                ],
                *catalog_reports,
            ]
    finally:
        await tables.drop_scratch()

