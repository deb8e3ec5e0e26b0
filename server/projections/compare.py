"""Row-by-row comparison of a live projection with its rebuilt copy.

Both copies are read in key order and merged, so the comparison keeps one
page of each side in memory at a time. Keys compare as Python values, so the
stores must return them in code point order (the "C" collation on PostgreSQL).

What counts as equal:

- `work_orders_current`: key `work_order_id`; the columns status, version,
  engineer_id, priority, site_id, updated_at (compared as instants) and the
  `state` JSON document.
- `work_order_timeline`: key (work_order_id, position of the entry within the
  order's timeline, from 1); the `entry` JSON document. `entry_id` is a
  surrogate key that a rebuild renumbers, so it is not compared.
- `event_audience`: key (engineer_id, global_position); a row is equal when
  both copies contain it.
- `kpi_order_history`: key (work_order_id, global_position); every other
  column. The rebuilt copy is cut at the KPI projector's checkpoint, because
  the live table lags the log by the events the projector has not applied.

JSON documents are decoded and compared as values, so key order and
whitespace do not matter, while every field and its value must match.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from .names import EVENT_AUDIENCE, KPI_ORDER_HISTORY, WORK_ORDER_TIMELINE, WORK_ORDERS_CURRENT

# Columns returned by `ComparedRows.rows` after the key columns, per projection.
VALUE_COLUMNS = {
    WORK_ORDERS_CURRENT: ("status", "version", "engineer_id", "priority", "site_id", "updated_at", "state"),
    WORK_ORDER_TIMELINE: ("entry",),
    EVENT_AUDIENCE: (),
    KPI_ORDER_HISTORY: (
        "stream_version",
        "type",
        "effective_time",
        "engineer_id",
        "asset_id",
        "contract_id",
        "fixed",
        "priority",
        "hold_reason",
        "maintenance_type",
        "component",
    ),
}
JSON_COLUMNS = frozenset({"state", "entry", "document"})
MISSING = "(no row)"


class ComparedRows(Protocol):
    def rows(self, projection: str, *, rebuilt: bool) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Yield pages of a projection's rows in key order.

        Rows are `(key..., value...)`: for `work_orders_current` the key is
        work_order_id, for `work_order_timeline` it is (work_order_id, an
        integer that orders the entries of one order), for `event_audience`
        (engineer_id, global_position), for `kpi_order_history`
        (work_order_id, global_position). Values follow `VALUE_COLUMNS`, with
        timestamps as aware datetimes and JSON as text or bytes.
        """
        ...


@dataclasses.dataclass(frozen=True)
class Difference:
    """One value that differs between the live and the rebuilt projection."""

    projection: str
    key: str
    column: str
    live: str
    rebuilt: str


@dataclasses.dataclass
class ComparisonReport:
    projection: str
    live_rows: int = 0
    rebuilt_rows: int = 0
    differing_rows: int = 0
    differences: list[Difference] = dataclasses.field(default_factory=list)
    # True when differences beyond the first `max_differences` were left out.
    truncated: bool = False

    @property
    def equal(self) -> bool:
        return self.differing_rows == 0


async def compare_projection(source: ComparedRows, projection: str, *, max_differences: int) -> ComparisonReport:
    """Compare every row of the live and rebuilt copies; keep the first `max_differences` differences."""
    report = ComparisonReport(projection)
    key_width = 1 if projection == WORK_ORDERS_CURRENT else 2
    columns = VALUE_COLUMNS[projection]
    live = _keyed_rows(source.rows(projection, rebuilt=False), projection, key_width)
    rebuilt = _keyed_rows(source.rows(projection, rebuilt=True), projection, key_width)

    def record(differences: list[Difference]) -> None:
        if differences:
            report.differing_rows += 1
            room = max_differences - len(report.differences)
            report.differences.extend(differences[:room])
            report.truncated = report.truncated or len(differences) > room

    live_row = await anext(live, None)
    rebuilt_row = await anext(rebuilt, None)
    while live_row is not None or rebuilt_row is not None:
        if rebuilt_row is None or (live_row is not None and live_row[0] < rebuilt_row[0]):
            assert live_row is not None
            report.live_rows += 1
            record([Difference(projection, _format_key(live_row[0]), "(row)", "present", MISSING)])
            live_row = await anext(live, None)
        elif live_row is None or rebuilt_row[0] < live_row[0]:
            report.rebuilt_rows += 1
            record([Difference(projection, _format_key(rebuilt_row[0]), "(row)", MISSING, "present")])
            rebuilt_row = await anext(rebuilt, None)
        else:
            report.live_rows += 1
            report.rebuilt_rows += 1
            key = _format_key(live_row[0])
            record(_row_differences(projection, key, columns, live_row[1], rebuilt_row[1]))
            live_row = await anext(live, None)
            rebuilt_row = await anext(rebuilt, None)
    return report


async def _keyed_rows(
    pages: AsyncIterator[list[tuple[Any, ...]]], projection: str, key_width: int
) -> AsyncIterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """Split rows into (key, values); a timeline key becomes (work_order_id, 1-based position in the order)."""
    current_order: str | None = None
    position = 0
    async for page in pages:
        for row in page:
            key, values = tuple(row[:key_width]), tuple(row[key_width:])
            if projection == WORK_ORDER_TIMELINE:
                if key[0] != current_order:
                    current_order, position = key[0], 0
                position += 1
                key = (key[0], position)
            yield key, values


def _row_differences(
    projection: str, key: str, columns: tuple[str, ...], live: tuple[Any, ...], rebuilt: tuple[Any, ...]
) -> list[Difference]:
    differences = []
    for column, live_value, rebuilt_value in zip(columns, live, rebuilt):
        if column in JSON_COLUMNS:
            differences.extend(_json_differences(projection, key, column, live_value, rebuilt_value))
        elif _normalised(live_value) != _normalised(rebuilt_value):
            differences.append(Difference(projection, key, column, _show(live_value), _show(rebuilt_value)))
    return differences


def _json_differences(projection: str, key: str, column: str, live: Any, rebuilt: Any) -> list[Difference]:
    """Name the top-level fields of two JSON documents that differ, or the whole column when one is unreadable."""
    try:
        live_document = msgspec.json.decode(live)
        rebuilt_document = msgspec.json.decode(rebuilt)
    except msgspec.DecodeError:
        if live == rebuilt:
            return []
        return [Difference(projection, key, column, _show(live), _show(rebuilt))]
    if live_document == rebuilt_document:
        return []
    if not isinstance(live_document, dict) or not isinstance(rebuilt_document, dict):
        return [Difference(projection, key, column, _show_json(live_document), _show_json(rebuilt_document))]
    differences = []
    for field in sorted(live_document.keys() | rebuilt_document.keys()):
        live_field = live_document.get(field, MISSING)
        rebuilt_field = rebuilt_document.get(field, MISSING)
        if live_field != rebuilt_field:
            differences.append(
                Difference(projection, key, f"{column}.{field}", _show_json(live_field), _show_json(rebuilt_field))
            )
    return differences


def _normalised(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc)
    return value


def _format_key(key: tuple[Any, ...]) -> str:
    return ", ".join(str(part) for part in key)


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return repr(value) if isinstance(value, str) else str(value)


def _show_json(value: Any, max_length: int = 200) -> str:
    if value == MISSING:
        return MISSING
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= max_length else text[: max_length - 3] + "..."
