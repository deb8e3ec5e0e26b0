"""Request and response bodies of the sync API."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from .envelope import ProposedEvent, RecordedEvent
from .reasons import DecisionStatus, ReasonCode
from .states import WorkOrderStatus
from .work_order import WorkOrderState


class EventBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Body of `POST /v1/events`: proposals decided in list order."""

    events: list[ProposedEvent]


class EventDecision(msgspec.Struct, kw_only=True):
    """The server's durable decision on one proposed event.

    `event_id`, `stream_version` and `global_position` are set only when the
    event was accepted into the log. `work_order_status` and
    `work_order_version` describe the order right after this decision.
    `replay` is true when the decision was stored earlier and is returned
    unchanged for a repeated proposal.
    """

    client_event_id: uuid.UUID
    work_order_id: str
    status: DecisionStatus
    reason_code: ReasonCode
    message: str
    work_order_status: WorkOrderStatus | None
    work_order_version: int
    decided_at: dt.datetime
    event_id: uuid.UUID | None = None
    stream_version: int | None = None
    global_position: int | None = None
    replay: bool = False


class DecisionBatch(msgspec.Struct):
    """Body of the response to `POST /v1/events`, one decision per proposal in order."""

    decisions: list[EventDecision]


class ChangesPage(msgspec.Struct, kw_only=True):
    """One page of `GET /v1/sync/changes`.

    `work_orders` contains the current state of every order touched by `events`
    that the caller may see, so a device can start from a snapshot without
    the stream's earlier events. `revoked` lists the orders touched by
    `events` that the caller may no longer see (an engineer's order that was
    reassigned or unassigned), so the device drops its copy.
    """

    events: list[RecordedEvent]
    work_orders: list[WorkOrderState]
    next_cursor: str
    has_more: bool
    revoked: list[str] = []


class TimelineEntry(msgspec.Struct, kw_only=True):
    """One row of a work order's timeline: an accepted event or a decision that was not applied."""

    work_order_id: str
    status: DecisionStatus
    reason_code: ReasonCode
    message: str
    type: str
    client_event_id: uuid.UUID
    actor: str
    actor_role: str
    device_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    payload: dict
    event_id: uuid.UUID | None = None
    stream_version: int | None = None
    global_position: int | None = None
    effective_time: dt.datetime | None = None


class WorkOrderPage(msgspec.Struct, kw_only=True):
    items: list[WorkOrderState]
    next_cursor: str | None
