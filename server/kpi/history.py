"""Replay of the accepted event log into the facts each KPI needs, one work order at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import msgspec

from shared_schema import TRANSITION_INDEX, RecordedEvent, WorkOrderStatus

S = WorkOrderStatus

# Interval kind of each state in which an engineer is travelling or on site. Time on
# hold is left out, because the log does not show whether the engineer stayed on site.
INTERVAL_KIND_BY_STATUS = {
    S.EN_ROUTE: "travel",
    S.ON_SITE: "on_site",
    S.IN_PROGRESS: "work",
}


class Interval(msgspec.Struct, frozen=True, kw_only=True):
    """Time one order spent in one state of `INTERVAL_KIND_BY_STATUS`, with the assignee during it.

    `kind` is "travel" (en_route), "on_site" (on site, work not started) or
    "work" (in_progress). `end` is the effective time of the event that left
    the state.
    """

    kind: str
    engineer_id: str | None
    start: dt.datetime
    end: dt.datetime


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    time: dt.datetime
    engineer_id: str | None
    fixed: bool


class OrderHistory(msgspec.Struct, kw_only=True):
    """Facts about one work order, taken from its events in stream order.

    `status` is the status after the last event given. `first_arrival` is the
    time and assignee of the first `arrived`, and `arrivals` counts every
    `arrived` (each one opens a visit). Intervals still open after the last
    event are not in `intervals`, because their end is not known yet.
    """

    work_order_id: str
    created_at: dt.datetime
    asset_id: str | None
    contract_id: str | None
    status: WorkOrderStatus
    corrective: bool = True
    """False for an order created as preventive maintenance."""
    component: str | None = None
    engineer_id: str | None = None
    first_arrival: tuple[dt.datetime, str | None] | None = None
    arrivals: int = 0
    completions: list[Completion] = msgspec.field(default_factory=list)
    intervals: list[Interval] = msgspec.field(default_factory=list)
    open_since: dt.datetime | None = None


def sort_events(events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
    """Return the events in global order, raising ValueError on a repeated position or a naive time."""
    ordered = sorted(events, key=lambda event: event.global_position)
    for previous, event in zip(ordered, ordered[1:]):
        if previous.global_position == event.global_position:
            raise ValueError(
                f"events: global_position {event.global_position} appears twice "
                f"(event ids {previous.event_id} and {event.event_id})"
            )
    for event in ordered:
        if event.effective_time.tzinfo is None or event.effective_time.utcoffset() is None:
            raise ValueError(
                f"events: effective_time of event {event.event_id} must be timezone-aware, "
                f"got naive {event.effective_time.isoformat()}"
            )
    return ordered


def _start_order(event: RecordedEvent, time: dt.datetime) -> OrderHistory:
    if event.type != "created":
        raise ValueError(
            f"events: work order {event.work_order_id!r} starts with {event.type!r} at global_position "
            f"{event.global_position}; the log must contain its created event"
        )
    payload = event.payload
    return OrderHistory(
        work_order_id=event.work_order_id,
        created_at=time,
        asset_id=payload.get("asset_id"),
        contract_id=payload.get("contract_id"),
        status=S.NEW,
        corrective=payload.get("maintenance_type", "corrective") != "preventive",
        component=payload.get("component"),
    )


def _track_assignee(order: OrderHistory, event: RecordedEvent) -> None:
    if event.type in ("assigned", "reassigned"):
        order.engineer_id = event.payload["engineer_id"]
    elif event.type in ("unassigned", "declined"):
        order.engineer_id = None
    elif event.type == "reopened" and event.payload.get("engineer_id"):
        order.engineer_id = event.payload["engineer_id"]


def _apply(order: OrderHistory, event: RecordedEvent, time: dt.datetime, previous_time: dt.datetime) -> None:
    if time < previous_time:
        raise ValueError(
            f"events: effective_time of event {event.event_id} on work order {order.work_order_id!r} "
            f"is {time.isoformat()}, earlier than the stream's previous event at {previous_time.isoformat()}"
        )
    row = TRANSITION_INDEX.get((order.status, event.type))
    if row is None:
        raise ValueError(
            f"events: {event.type!r} at global_position {event.global_position} is not a valid transition "
            f"from status {order.status.value!r} of work order {order.work_order_id!r}"
        )

    # The assignee of an interval is the one before the event that ends it,
    # which for engineer events is the engineer who recorded them.
    new_status = row.to_state or order.status
    if new_status is not order.status:
        kind = INTERVAL_KIND_BY_STATUS.get(order.status)
        if kind is not None and order.open_since is not None:
            order.intervals.append(Interval(kind=kind, engineer_id=order.engineer_id, start=order.open_since, end=time))
        order.open_since = time
        order.status = new_status

    if event.type == "arrived":
        order.arrivals += 1
        if order.first_arrival is None:
            order.first_arrival = (time, order.engineer_id)
    elif event.type == "completed":
        fixed = bool(event.payload.get("fixed", True))
        order.completions.append(Completion(time=time, engineer_id=order.engineer_id, fixed=fixed))
    _track_assignee(order, event)


def replay_orders(events: Iterable[RecordedEvent]) -> dict[str, OrderHistory]:
    """Fold the accepted events of each work order, in global order, into its `OrderHistory`.

    Raises ValueError, naming the event, when a stream does not begin with
    `created`, breaks the transition table, or goes back in effective time.
    """
    orders: dict[str, OrderHistory] = {}
    last_time: dict[str, dt.datetime] = {}
    for event in sort_events(events):
        time = event.effective_time.astimezone(dt.timezone.utc)
        order = orders.get(event.work_order_id)
        if order is None:
            order = _start_order(event, time)
            order.open_since = time
            orders[event.work_order_id] = order
        else:
            _apply(order, event, time, last_time[event.work_order_id])
        last_time[event.work_order_id] = time
    return orders
