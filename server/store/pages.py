"""Page building shared by the stores: the same rules for cursors and visibility on every database."""

from __future__ import annotations

from collections.abc import Callable

from shared_schema import ChangesPage, RecordedEvent, WorkOrderState

from .cursors import encode_cursor


def work_order_filters(
    placeholder: Callable[[int], str],
    *,
    status: str | None,
    engineer_id: str | None,
    priority: str | None,
    after: str | None,
) -> tuple[str, list[object]]:
    """Build the WHERE clause and its parameters for the work-order list.

    `placeholder(n)` renders the n-th parameter (1-based) in the driver's style.
    """
    clauses: list[str] = []
    params: list[object] = []
    for column, operator, value in (
        ("status", "=", status),
        ("engineer_id", "=", engineer_id),
        ("priority", "=", priority),
        ("work_order_id", ">", after),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} {operator} {placeholder(len(params))}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, params


def work_order_page(rows: list[WorkOrderState], limit: int) -> tuple[list[WorkOrderState], str | None]:
    """Cut `limit + 1` fetched rows to a page; the second value is the cursor of the next page, if any."""
    has_more = len(rows) > limit
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].work_order_id) if has_more and items else None
    return items, next_cursor


def changes_page(
    rows: list[tuple[int, RecordedEvent]],
    states: dict[str, WorkOrderState],
    *,
    position: int,
    limit: int,
    engineer_id: str | None,
) -> ChangesPage:
    """Build a pull page from `limit + 1` fetched (position, event) rows and the states of their orders.

    An engineer gets the states of the orders still assigned to them; the
    other orders the page touches are listed as revoked, without state.
    """
    has_more = len(rows) > limit
    rows = rows[:limit]
    events = [event for _, event in rows]
    stream_ids = sorted({event.work_order_id for event in events})
    visible = [
        states[stream_id]
        for stream_id in stream_ids
        if stream_id in states and (engineer_id is None or states[stream_id].engineer_id == engineer_id)
    ]
    visible_ids = {state.work_order_id for state in visible}
    return ChangesPage(
        events=events,
        work_orders=visible,
        next_cursor=str(rows[-1][0] if rows else position),
        has_more=has_more,
        revoked=[stream_id for stream_id in stream_ids if stream_id not in visible_ids],
    )
