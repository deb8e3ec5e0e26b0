"""Folding steps shared by ingestion (`server.ingest.plan_batch`) and the projection rebuild.

Both paths build projection rows with these functions, so a rebuild from the
log produces the rows that ingestion wrote.
"""

from __future__ import annotations

import datetime as dt

from shared_schema import (
    TRANSITION_INDEX,
    Actor,
    EventDecision,
    ProposedEvent,
    RecordedEvent,
    TimelineEntry,
    WorkOrderState,
    apply_event,
    parse_payload,
)


class ReplayError(ValueError):
    """An accepted event that the current state machine cannot apply to the state before it."""


def event_audience(before: WorkOrderState | None, after: WorkOrderState) -> frozenset[str]:
    """Return the engineers who may see an event in the pull feed: the assignee before and after it."""
    engineers = {before.engineer_id if before else None, after.engineer_id}
    return frozenset(engineer for engineer in engineers if engineer is not None)


def timeline_entry(
    decision: EventDecision,
    proposal: ProposedEvent,
    actor: Actor,
    recorded_at: dt.datetime,
    effective: dt.datetime | None,
) -> TimelineEntry:
    """Build the timeline row of one decision; `effective` is the event's effective time, None unless accepted."""
    return TimelineEntry(
        work_order_id=proposal.work_order_id,
        status=decision.status,
        reason_code=decision.reason_code,
        message=decision.message,
        type=proposal.type,
        client_event_id=proposal.client_event_id,
        actor=actor.subject,
        actor_role=actor.role.value,
        device_id=proposal.device_id,
        occurred_at=proposal.occurred_at,
        recorded_at=recorded_at,
        payload=proposal.payload,
        event_id=decision.event_id,
        stream_version=decision.stream_version,
        global_position=decision.global_position,
        effective_time=effective,
    )


def apply_recorded_event(state: WorkOrderState | None, event: RecordedEvent) -> WorkOrderState:
    """Return the state after an event of the log, with the transition row and `apply_event` that `decide` used.

    Raises ReplayError when the event has no transition row in that state, or
    its payload or order does not fit, which means the log and this version
    of the state machine disagree.
    """
    status = state.status if state else None
    where = (
        f"event {event.event_id} at global position {event.global_position} ({event.type} on {event.work_order_id!r})"
    )
    row = TRANSITION_INDEX.get((status, event.type))
    if row is None:
        state_name = status.value if status else "absent"
        raise ReplayError(f"{where} has no row in the transition table for state {state_name}")
    try:
        payload = parse_payload(event.type, event.payload)
        return apply_event(state, event.work_order_id, payload, row.to_state, event.effective_time)
    except ValueError as exc:
        raise ReplayError(f"{where} cannot be applied: {exc}") from exc
