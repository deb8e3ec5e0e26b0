"""History rows of the KPI projection: the fields of each event that `compute_kpis` and the SLA engine read.

`compute_kpis` replays each order through the transition table and reads
the status changes, the assignee from the assignment payloads, the asset,
contract, maintenance type and component of `created` and the `fixed` flag
of `completed`. The SLA
engine also reads the priority of `created` and `priority_changed` and the
reason of `hold_started`, so `priority_changed` rows are kept too. Other
events that keep the status (notes, parts, signatures) change none of
these, so the history leaves them out.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from shared_schema import TRANSITIONS, RecordedEvent

PROJECTOR_NAME = "kpi"

# Event types that change an order's status in at least one transition row: the input of `compute_kpis`.
KPI_EVENT_TYPES = frozenset(row.event_type for row in TRANSITIONS if row.to_state is not None)
# Event types with a history row: the KPI input and the SLA engine's priority changes.
HISTORY_EVENT_TYPES = KPI_EVENT_TYPES | {"priority_changed"}

# Payload fields each event type contributes to the KPI engine's view of the event.
_PAYLOAD_FIELDS = {
    "created": ("asset_id", "contract_id", "maintenance_type", "component"),
    "assigned": ("engineer_id",),
    "reassigned": ("engineer_id",),
    "reopened": ("engineer_id",),
    "completed": ("fixed",),
}

UTC = dt.timezone.utc


class HistoryRow(msgspec.Struct, frozen=True, array_like=True):
    """One row of `kpi_order_history`, in its column order."""

    work_order_id: str
    global_position: int
    stream_version: int
    type: str
    effective_time: dt.datetime
    engineer_id: str | None = None
    asset_id: str | None = None
    contract_id: str | None = None
    fixed: bool | None = None
    priority: str | None = None
    """Set for `created` and `priority_changed`."""
    hold_reason: str | None = None
    """The `reason` of `hold_started`."""
    maintenance_type: str | None = None
    """Set for `created` when its payload names one; None reads as corrective."""
    component: str | None = None
    """The `component` of `created`."""


def history_row(event: RecordedEvent) -> HistoryRow | None:
    """Return the history row of an accepted event, or None for a type that neither KPI nor SLA reads."""
    if event.type not in HISTORY_EVENT_TYPES:
        return None
    fields = {name: event.payload.get(name) for name in _PAYLOAD_FIELDS.get(event.type, ())}
    if "fixed" in fields:
        # The engine reads a completion without the flag as fixed.
        fields["fixed"] = bool(fields["fixed"]) if fields["fixed"] is not None else True
    if event.type in ("created", "priority_changed"):
        fields["priority"] = event.payload.get("priority")
    if event.type == "hold_started":
        fields["hold_reason"] = event.payload.get("reason")
    return HistoryRow(
        work_order_id=event.work_order_id,
        global_position=event.global_position,
        stream_version=event.stream_version,
        type=event.type,
        effective_time=event.effective_time.astimezone(UTC),
        **fields,
    )


def history_rows(events: list[RecordedEvent]) -> list[HistoryRow]:
    return [row for row in map(history_row, events) if row is not None]


def recorded_event(row: HistoryRow) -> RecordedEvent:
    """Rebuild the part of a recorded event that `compute_kpis` reads from a history row.

    The history does not keep event ids, devices or actors, so the event id
    is derived from the global position (the engine names it only in errors)
    and the other envelope fields are placeholders.
    """
    payload: dict[str, object] = {}
    for name in _PAYLOAD_FIELDS.get(row.type, ()):
        value = getattr(row, name)
        if value is not None:
            payload[name] = value
    event_id = uuid.UUID(int=row.global_position)
    return RecordedEvent(
        event_id=event_id,
        global_position=row.global_position,
        stream_version=row.stream_version,
        client_event_id=event_id,
        work_order_id=row.work_order_id,
        type=row.type,
        payload=payload,
        occurred_at=row.effective_time,
        effective_time=row.effective_time,
        recorded_at=row.effective_time,
        base_version=row.stream_version - 1,
        device_id="",
        actor="",
        actor_role="",
    )


def format_instant(value: dt.datetime) -> str:
    """Format an aware instant as fixed-width UTC text, whose text order is time order (SQLite columns)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class HistoryWindow(msgspec.Struct, frozen=True, kw_only=True):
    """Bounds of the orders a KPI window needs.

    An order counts in [start, end) only when it was created before `end` and
    has an event at or after `start`. Another order on the same asset makes a
    repeat visit when it was created in (start, `repeat_end`], so those orders
    are loaded too.
    """

    start: dt.datetime
    end: dt.datetime
    repeat_end: dt.datetime


class ProjectorLag(msgspec.Struct, frozen=True, kw_only=True):
    """How far the projection is behind the log.

    `checkpoint_recorded_at` is the time the server recorded the event at the
    checkpoint, None before the first event is applied.
    """

    head_position: int
    checkpoint_position: int
    checkpoint_recorded_at: dt.datetime | None
