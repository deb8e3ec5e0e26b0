"""The work-order state machine as data.

In each row, an event of `event_type` in `from_state` moves the order to
`to_state` (None keeps the state) and may be recorded by `roles`. When
`assigned_engineer_only` is set, an engineer must be the order's assignee.
A `from_state` of None means the order does not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from .states import ACTIVE_STATES, OPEN_STATES, PRE_WORK_STATES, Role, WorkOrderStatus

S = WorkOrderStatus
ENGINEER_SIDE = (Role.ENGINEER, Role.ADMIN)
OFFICE = (Role.DISPATCHER, Role.MANAGER, Role.ADMIN)
MANAGEMENT = (Role.MANAGER, Role.ADMIN)


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    from_state: WorkOrderStatus | None
    event_type: str
    to_state: WorkOrderStatus | None
    roles: tuple[Role, ...]
    assigned_engineer_only: bool = False


def _rows(
    event_type: str,
    from_states: Iterable[WorkOrderStatus | None],
    to_state: WorkOrderStatus | None,
    roles: tuple[Role, ...],
    assigned_engineer_only: bool = False,
) -> list[Transition]:
    return [
        Transition(
            from_state=state,
            event_type=event_type,
            to_state=to_state,
            roles=roles,
            assigned_engineer_only=assigned_engineer_only,
        )
        for state in from_states
    ]


# Event types that only the server records, under Role.SYSTEM.
SERVER_ORIGIN_TYPES = ("sla_warning", "sla_breached")


def _build_table() -> list[Transition]:
    field_records = ("parts_used", "time_logged", "attachment_added", "checklist_updated")
    rows = [
        *_rows("created", [None], S.NEW, OFFICE),
        *_rows("assigned", [S.NEW], S.ASSIGNED, OFFICE),
        *_rows("reassigned", PRE_WORK_STATES, S.ASSIGNED, OFFICE),
        *_rows("unassigned", PRE_WORK_STATES, S.NEW, OFFICE),
        # A dispatcher cancels only before work starts; a manager until completion.
        *_rows("cancelled", [S.NEW, *PRE_WORK_STATES], S.CANCELLED, OFFICE),
        *_rows("cancelled", [S.IN_PROGRESS, S.ON_HOLD], S.CANCELLED, MANAGEMENT),
        *_rows("accepted", [S.ASSIGNED], S.ACCEPTED, ENGINEER_SIDE, True),
        *_rows("declined", [S.ASSIGNED], S.NEW, ENGINEER_SIDE, True),
        # Leaving a job on hold and travelling again starts the next visit.
        *_rows("travel_started", [S.ACCEPTED, S.ON_HOLD], S.EN_ROUTE, ENGINEER_SIDE, True),
        *_rows("arrived", [S.EN_ROUTE], S.ON_SITE, ENGINEER_SIDE, True),
        *_rows("work_started", [S.ON_SITE], S.IN_PROGRESS, ENGINEER_SIDE, True),
        *_rows("hold_started", [S.IN_PROGRESS], S.ON_HOLD, ENGINEER_SIDE, True),
        *_rows("work_resumed", [S.ON_HOLD], S.IN_PROGRESS, ENGINEER_SIDE, True),
        *_rows("completed", [S.IN_PROGRESS], S.COMPLETED, ENGINEER_SIDE, True),
        *_rows("closed", [S.COMPLETED], S.CLOSED, OFFICE),
        *_rows("reopened", [S.COMPLETED, S.CLOSED], S.ASSIGNED, MANAGEMENT),
        *_rows("priority_changed", OPEN_STATES, None, OFFICE),
        *_rows("note_added", [S.NEW, S.ASSIGNED, S.COMPLETED], None, OFFICE),
        *_rows("note_added", ACTIVE_STATES, None, (Role.ENGINEER, *OFFICE), True),
        # Customers often sign after the job is marked complete.
        *_rows("signature_captured", [*ACTIVE_STATES, S.COMPLETED], None, ENGINEER_SIDE, True),
        # Resolving a review records the office's ruling and keeps the status, so
        # it is allowed in every state, the terminal ones included.
        *_rows("review_resolved", list(S), None, OFFICE),
    ]
    for event_type in field_records:
        rows.extend(_rows(event_type, ACTIVE_STATES, None, ENGINEER_SIDE, True))
    # The server records SLA crossings itself in every state where an SLA
    # clock can run. No token carries Role.SYSTEM, so no caller can record them.
    for event_type in SERVER_ORIGIN_TYPES:
        rows.extend(_rows(event_type, OPEN_STATES, None, (Role.SYSTEM,)))
    return rows


TRANSITIONS: tuple[Transition, ...] = tuple(_build_table())
TRANSITION_INDEX: dict[tuple[WorkOrderStatus | None, str], Transition] = {
    (row.from_state, row.event_type): row for row in TRANSITIONS
}
assert len(TRANSITION_INDEX) == len(TRANSITIONS), "the transition table has a duplicate (state, event type) row"

# Roles that may record an event type in at least one state.
ROLES_BY_EVENT_TYPE: dict[str, frozenset[Role]] = {}
for _row in TRANSITIONS:
    ROLES_BY_EVENT_TYPE[_row.event_type] = ROLES_BY_EVENT_TYPE.get(_row.event_type, frozenset()) | set(_row.roles)

# Events that record physical work. When an engineer's event of these types
# collided with an office change while the tablet was offline, a dispatcher
# reviews it instead of the server dropping what really happened.
FIELD_WORK_TYPES = frozenset(
    {
        "travel_started",
        "arrived",
        "work_started",
        "hold_started",
        "work_resumed",
        "completed",
        "note_added",
        "parts_used",
        "time_logged",
        "attachment_added",
        "checklist_updated",
        "signature_captured",
    }
)


def transition_table_json() -> bytes:
    """Encode the table for client ports, one object per row."""
    return msgspec.json.format(msgspec.json.encode(list(TRANSITIONS)), indent=2)
