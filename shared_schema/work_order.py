"""Work-order state and the pure fold of accepted events into it."""

from __future__ import annotations

import datetime as dt

import msgspec

from . import payloads as p
from .states import WorkOrderStatus


class WorkOrderState(msgspec.Struct, kw_only=True):
    """Current state of one work order stream.

    The `*_version` fields record the stream version at which the assignment
    last changed, or the order was cancelled or closed, so that the decision on
    a stale proposal can name what happened after its `base_version`.
    """

    work_order_id: str
    status: WorkOrderStatus
    version: int
    title: str
    site_id: str
    priority: p.Priority
    asset_id: str | None = None
    contract_id: str | None = None
    description: str = ""
    engineer_id: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    hold_reason: p.HoldReason | None = None
    visit_count: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    assignment_version: int = 0
    cancelled_version: int = 0
    closed_version: int = 0


def apply_event(
    state: WorkOrderState | None,
    work_order_id: str,
    payload: p.Payload,
    to_state: WorkOrderStatus | None,
    effective_time: dt.datetime,
) -> WorkOrderState:
    """Return the state after one accepted event; the input is not modified.

    `to_state` comes from the transition table; None keeps the current status.
    """
    if isinstance(payload, p.Created):
        return WorkOrderState(
            work_order_id=work_order_id,
            status=WorkOrderStatus.NEW,
            version=1,
            title=payload.title,
            site_id=payload.site_id,
            asset_id=payload.asset_id,
            contract_id=payload.contract_id,
            priority=payload.priority,
            description=payload.description,
            created_at=effective_time,
            updated_at=effective_time,
        )
    if state is None:
        raise ValueError(f"cannot apply {type(payload).__name__} to work order {work_order_id!r}: it does not exist")

    version = state.version + 1
    changes: dict[str, object] = {"version": version, "updated_at": effective_time}
    if isinstance(payload, p.SlaCrossing):
        # An SLA crossing is the server's observation, not a change to the order.
        # Keeping updated_at means it does not raise the floor of the effective
        # time of device events recorded after it, so it cannot move the SLA.
        del changes["updated_at"]
    if to_state is not None:
        changes["status"] = to_state

    match payload:
        case p.Assigned() | p.Reassigned():
            changes.update(
                engineer_id=payload.engineer_id,
                planned_start=payload.planned_start,
                planned_end=payload.planned_end,
                assignment_version=version,
            )
        case p.Unassigned() | p.Declined():
            changes.update(engineer_id=None, planned_start=None, planned_end=None, assignment_version=version)
        case p.Reopened():
            if payload.engineer_id is not None and payload.engineer_id != state.engineer_id:
                changes.update(engineer_id=payload.engineer_id, assignment_version=version)
            changes["hold_reason"] = None
        case p.Cancelled():
            changes["cancelled_version"] = version
        case p.Closed():
            changes["closed_version"] = version
        case p.Arrived():
            changes["visit_count"] = state.visit_count + 1
        case p.HoldStarted():
            changes["hold_reason"] = payload.reason
        case p.WorkResumed() | p.TravelStarted():
            changes["hold_reason"] = None
        case p.PriorityChanged():
            changes["priority"] = payload.priority
        case _:
            pass
    return msgspec.structs.replace(state, **changes)
