"""Rebuild and verify the catalog tables, which are folded from `catalog_events` alone.

Reference data is small, so the whole log is read and folded in memory inside
one transaction that blocks catalog writes (rebuild) or reads one snapshot
(verify). A live row is compared with the rebuilt one column by column, and
the `document` JSON field by field.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..catalog.commands import CommandError
from ..catalog.fold import ENTITY_TABLES, CatalogEvent, Documents, apply_catalog_event, empty_documents, table_row
from .compare import ComparisonReport, Difference, _format_key, _row_differences
from .fold import ReplayError
from .names import CATALOG_PROJECTIONS

# The entity whose documents fill each catalog projection.
ENTITY_OF_PROJECTION = {table: entity for entity, (table, _, _) in ENTITY_TABLES.items()}


class CatalogTables(Protocol):
    async def hold_writes(self) -> None: ...

    async def read_events(self) -> list[CatalogEvent]: ...

    async def table_rows(self, entity: str) -> list[tuple[Any, ...]]: ...

    async def replace_table(self, entity: str, documents: Documents) -> None: ...


def fold_catalog(events: list[CatalogEvent]) -> Documents:
    """Fold every catalog event in id order, raising ReplayError for one that the rules reject."""
    documents = empty_documents()
    for event in events:
        try:
            apply_catalog_event(documents, event)
        except CommandError as exc:
            raise ReplayError(
                f"catalog event {event.id} ({event.type} {event.entity} {event.entity_id!r}) cannot be applied: "
                f"{exc.message} ({exc.field} = {exc.value!r})"
            ) from None
    return documents


def catalog_projections(projections: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in projections if name in CATALOG_PROJECTIONS)


async def rebuild_catalog(catalog: CatalogTables, projections: tuple[str, ...]) -> int:
    """Replace the rows of the catalog `projections`, inside the caller's transaction; return the events folded."""
    await catalog.hold_writes()
    events = await catalog.read_events()
    documents = fold_catalog(events)
    for projection in projections:
        await catalog.replace_table(ENTITY_OF_PROJECTION[projection], documents)
    return len(events)


async def verify_catalog(catalog: CatalogTables, projections: tuple[str, ...], *, max_differences: int) -> list[ComparisonReport]:
    """Compare each catalog projection with a fold of the log, inside the caller's snapshot transaction."""
    documents = fold_catalog(await catalog.read_events())
    reports = []
    for projection in projections:
        entity = ENTITY_OF_PROJECTION[projection]
        _, _, columns = ENTITY_TABLES[entity]
        live = {row[0]: row[1:] for row in await catalog.table_rows(entity)}
        rebuilt = {key: table_row(entity, document)[1:] for key, document in documents[entity].items()}
        reports.append(_compare(projection, (*columns, "document"), live, rebuilt, max_differences))
    return reports


def _compare(
    projection: str,
    columns: tuple[str, ...],
    live: dict[str, tuple[Any, ...]],
    rebuilt: dict[str, tuple[Any, ...]],
    max_differences: int,
) -> ComparisonReport:
    report = ComparisonReport(projection, live_rows=len(live), rebuilt_rows=len(rebuilt))
    for key in sorted(live.keys() | rebuilt.keys()):
        shown = _format_key((key,))
        if key not in rebuilt:
            differences = [Difference(projection, shown, "(row)", "present", "(no row)")]
        elif key not in live:
            differences = [Difference(projection, shown, "(row)", "(no row)", "present")]
        else:
            differences = _row_differences(projection, shown, columns, live[key], rebuilt[key])
        if differences:
            report.differing_rows += 1
            room = max_differences - len(report.differences)
            report.differences.extend(differences[:room])
            report.truncated = report.truncated or len(differences) > room
    return report
