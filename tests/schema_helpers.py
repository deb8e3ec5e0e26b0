"""Builders and a hand-written statement of the work-order policy for the shared_schema tests.

The lifecycle table and `expected_reason` restate the rules in plain terms,
without calling `decide` or reading shared_schema's transition rows, so the
tests compare two independent statements of the same policy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from shared_schema import (
    TRANSITION_INDEX,
    Actor,
    DecisionStatus,
    ProposedEvent,
    ReasonCode,
    Role,
    WorkOrderState,
    WorkOrderStatus,
    apply_event,
    parse_payload,
)

from server.contract.builders import (  # noqa: F401  (re-exported for the tests)
    ATTACHMENT_SHA256,
    ENGINEER_A,
    ENGINEER_B,
    T0,
    UNKNOWN_TYPE,
    WORK_ORDER_ID,
    invalid_payload,
    valid_payload,
)

S = WorkOrderStatus

# Event type and raw payload of one accepted event.
HistoryEntry = tuple[str, dict[str, Any]]


# --- Builders ---------------------------------------------------------------


def make_proposal(
    event_type: str,
    base_version: int,
    payload: dict[str, Any] | None = None,
    *,
    causation_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
    occurred_at: dt.datetime = T0,
    client_event_id: uuid.UUID | None = None,
) -> ProposedEvent:
    return ProposedEvent(
        client_event_id=client_event_id or uuid.uuid4(),
        work_order_id=WORK_ORDER_ID,
        type=event_type,
        payload=valid_payload(event_type) if payload is None else payload,
        occurred_at=occurred_at,
        base_version=base_version,
        device_id="tablet-1",
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def make_actor(role: Role, engineer_id: str | None = None) -> Actor:
    return Actor(subject=f"{role.value}:{engineer_id or 'office'}", role=role, engineer_id=engineer_id)


DISPATCHER = make_actor(Role.DISPATCHER)
MANAGER = make_actor(Role.MANAGER)
ADMIN = make_actor(Role.ADMIN)
ENGINEER_ON_A = make_actor(Role.ENGINEER, ENGINEER_A)
ENGINEER_ON_B = make_actor(Role.ENGINEER, ENGINEER_B)
ACTORS = {
    "dispatcher": DISPATCHER,
    "manager": MANAGER,
    "admin": ADMIN,
    "engineer_a": ENGINEER_ON_A,
    "engineer_b": ENGINEER_ON_B,
    "system": make_actor(Role.SYSTEM),
}


# --- Lifecycle, restated by hand ----------------------------------------------

ENGINEER_SIDE = frozenset({Role.ENGINEER, Role.ADMIN})
OFFICE = frozenset({Role.DISPATCHER, Role.MANAGER, Role.ADMIN})
MANAGEMENT = frozenset({Role.MANAGER, Role.ADMIN})
OFFICE_AND_ENGINEER = OFFICE | {Role.ENGINEER}
SERVER = frozenset({Role.SYSTEM})

PRE_WORK = (S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ON_SITE)
ACTIVE = (S.ACCEPTED, S.EN_ROUTE, S.ON_SITE, S.IN_PROGRESS, S.ON_HOLD)
OPEN = (S.NEW, *PRE_WORK, S.IN_PROGRESS, S.ON_HOLD)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one event type does in one state. `to_state` None keeps the state."""

    to_state: WorkOrderStatus | None
    roles: frozenset[Role]
    assignee_only: bool = False


def _lifecycle() -> dict[tuple[WorkOrderStatus | None, str], Rule]:
    # (event type, states it may happen in, target state, roles, engineer must be the assignee)
    statements: list[tuple[str, Sequence[WorkOrderStatus | None], WorkOrderStatus | None, frozenset[Role], bool]] = [
        ("created", [None], S.NEW, OFFICE, False),
        ("assigned", [S.NEW], S.ASSIGNED, OFFICE, False),
        ("reassigned", PRE_WORK, S.ASSIGNED, OFFICE, False),
        ("unassigned", PRE_WORK, S.NEW, OFFICE, False),
        ("cancelled", [S.NEW, *PRE_WORK], S.CANCELLED, OFFICE, False),
        ("cancelled", [S.IN_PROGRESS, S.ON_HOLD], S.CANCELLED, MANAGEMENT, False),
        ("accepted", [S.ASSIGNED], S.ACCEPTED, ENGINEER_SIDE, True),
        ("declined", [S.ASSIGNED], S.NEW, ENGINEER_SIDE, True),
        ("travel_started", [S.ACCEPTED, S.ON_HOLD], S.EN_ROUTE, ENGINEER_SIDE, True),
        ("arrived", [S.EN_ROUTE], S.ON_SITE, ENGINEER_SIDE, True),
        ("work_started", [S.ON_SITE], S.IN_PROGRESS, ENGINEER_SIDE, True),
        ("hold_started", [S.IN_PROGRESS], S.ON_HOLD, ENGINEER_SIDE, True),
        ("work_resumed", [S.ON_HOLD], S.IN_PROGRESS, ENGINEER_SIDE, True),
        ("completed", [S.IN_PROGRESS], S.COMPLETED, ENGINEER_SIDE, True),
        ("closed", [S.COMPLETED], S.CLOSED, OFFICE, False),
        ("reopened", [S.COMPLETED, S.CLOSED], S.ASSIGNED, MANAGEMENT, False),
        ("priority_changed", OPEN, None, OFFICE, False),
        ("note_added", [S.NEW, S.ASSIGNED, S.COMPLETED], None, OFFICE, False),
        ("note_added", ACTIVE, None, OFFICE_AND_ENGINEER, True),
        ("parts_used", ACTIVE, None, ENGINEER_SIDE, True),
        ("time_logged", ACTIVE, None, ENGINEER_SIDE, True),
        ("attachment_added", ACTIVE, None, ENGINEER_SIDE, True),
        ("checklist_updated", ACTIVE, None, ENGINEER_SIDE, True),
        ("signature_captured", [*ACTIVE, S.COMPLETED], None, ENGINEER_SIDE, True),
        ("review_resolved", list(S), None, OFFICE, False),
        ("sla_warning", OPEN, None, SERVER, False),
        ("sla_breached", OPEN, None, SERVER, False),
    ]
    table: dict[tuple[WorkOrderStatus | None, str], Rule] = {}
    for event_type, states, to_state, roles, assignee_only in statements:
        for state in states:
            assert (state, event_type) not in table, f"restated lifecycle repeats ({state}, {event_type})"
            table[(state, event_type)] = Rule(to_state, roles, assignee_only)
    return table


LIFECYCLE = _lifecycle()
KNOWN_TYPES = frozenset(event_type for _, event_type in LIFECYCLE)
ROLES_FOR_TYPE = {
    event_type: frozenset().union(*(rule.roles for (_, t), rule in LIFECYCLE.items() if t == event_type))
    for event_type in KNOWN_TYPES
}

# Physical work on site: a person reviews it when it collides with an office change.
FIELD_WORK = frozenset(
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
REVIEW_CODES = frozenset(
    {
        ReasonCode.WORK_ON_CANCELLED_ORDER,
        ReasonCode.WORK_ON_REASSIGNED_ORDER,
        ReasonCode.WORK_ON_CLOSED_ORDER,
        ReasonCode.CAUSATION_IN_REVIEW,
    }
)


def expected_status(code: ReasonCode) -> DecisionStatus:
    if code is ReasonCode.APPLIED:
        return DecisionStatus.ACCEPTED
    if code in REVIEW_CODES:
        return DecisionStatus.NEEDS_REVIEW
    return DecisionStatus.REJECTED


# --- History of one order ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The order after one accepted event, as computed from the restated lifecycle."""

    event_type: str
    status: WorkOrderStatus
    engineer_id: str | None
    assignment_changed: bool


def replay(history: Sequence[HistoryEntry]) -> list[Snapshot]:
    """Replay accepted events through the restated lifecycle, one snapshot per event."""
    snapshots: list[Snapshot] = []
    status: WorkOrderStatus | None = None
    engineer: str | None = None
    for event_type, payload in history:
        rule = LIFECYCLE[(status, event_type)]
        new_engineer = engineer
        if event_type in ("assigned", "reassigned"):
            new_engineer = payload["engineer_id"]
        elif event_type in ("unassigned", "declined"):
            new_engineer = None
        elif event_type == "reopened" and payload.get("engineer_id"):
            new_engineer = payload["engineer_id"]
        assignment_changed = event_type in ("assigned", "reassigned", "unassigned", "declined") or (
            event_type == "reopened" and new_engineer != engineer
        )
        status = rule.to_state or status
        engineer = new_engineer
        assert status is not None
        snapshots.append(Snapshot(event_type, status, engineer, assignment_changed))
    return snapshots


def fold_history(history: Sequence[HistoryEntry]) -> WorkOrderState | None:
    """Fold accepted events with `apply_event`, taking each target state from the transition table."""
    state: WorkOrderState | None = None
    for index, (event_type, payload) in enumerate(history):
        row = TRANSITION_INDEX[(state.status if state else None, event_type)]
        effective_time = T0 + dt.timedelta(minutes=index)
        state = apply_event(state, WORK_ORDER_ID, parse_payload(event_type, payload), row.to_state, effective_time)
    return state


# --- The decision policy, restated -----------------------------------------------


def change_meanwhile(missed: Sequence[Snapshot], actor: Actor, assignee: str | None) -> str | None:
    """Name the office change a stale device missed, most serious first.

    Returns "cancelled", "closed", "reassigned" (the engineer is no longer the
    assignee and the assignment changed), "other" for any other missed event,
    or None when nothing was missed.
    """
    if not missed:
        return None
    if any(snapshot.event_type == "cancelled" for snapshot in missed):
        return "cancelled"
    if any(snapshot.event_type == "closed" for snapshot in missed):
        return "closed"
    engineer_lost_order = actor.role is Role.ENGINEER and actor.engineer_id != assignee
    if engineer_lost_order and any(snapshot.assignment_changed for snapshot in missed):
        return "reassigned"
    return "other"


def reason_for_change(change: str, event_type: str, actor: Actor) -> ReasonCode:
    """Pick the stale reason: an engineer's field work is kept for review, anything else is rejected."""
    field_work = event_type in FIELD_WORK and actor.role is Role.ENGINEER
    if change == "cancelled":
        return ReasonCode.WORK_ON_CANCELLED_ORDER if field_work else ReasonCode.CANCELLED_MEANWHILE
    if change == "closed":
        return ReasonCode.WORK_ON_CLOSED_ORDER if field_work else ReasonCode.CLOSED_MEANWHILE
    if change == "reassigned":
        return ReasonCode.WORK_ON_REASSIGNED_ORDER if field_work else ReasonCode.REASSIGNED_MEANWHILE
    return ReasonCode.SUPERSEDED


def expected_reason(
    history: Sequence[HistoryEntry],
    event_type: str,
    payload_is_valid: bool,
    actor: Actor,
    base_version: int,
    causation: DecisionStatus | None = None,
) -> ReasonCode:
    """Return the reason code the policy gives a proposal on an order with `history`.

    Each proposal gets one reason, and the checks run in this order. The event
    type is known and the payload valid. The order exists, or does not for
    `created`. The device has not seen a version from the future. The event
    it follows was accepted. The role may record this type in some state,
    the lifecycle allows the type in the current state for this role, an
    engineer is the assignee, and a `review_resolved` names a held event. A
    stale device (base_version below the version) that fails a check gets the
    change it missed as the reason instead, where that change explains the
    failure.
    """
    if event_type not in KNOWN_TYPES:
        return ReasonCode.UNKNOWN_EVENT_TYPE
    if not payload_is_valid:
        return ReasonCode.INVALID_PAYLOAD

    snapshots = replay(history)
    exists = bool(snapshots)
    if not exists and event_type != "created":
        return ReasonCode.UNKNOWN_WORK_ORDER
    if exists and event_type == "created":
        return ReasonCode.WORK_ORDER_EXISTS
    version = len(snapshots)
    if base_version > version:
        return ReasonCode.BASE_VERSION_AHEAD

    if causation is DecisionStatus.REJECTED:
        return ReasonCode.CAUSATION_REJECTED
    if causation is DecisionStatus.NEEDS_REVIEW:
        return ReasonCode.CAUSATION_IN_REVIEW
    if actor.role not in ROLES_FOR_TYPE[event_type]:
        return ReasonCode.ROLE_NOT_ALLOWED

    status = snapshots[-1].status if exists else None
    assignee = snapshots[-1].engineer_id if exists else None
    change = change_meanwhile(snapshots[base_version:], actor, assignee)
    rule = LIFECYCLE.get((status, event_type))

    if rule is None:
        return ReasonCode.INVALID_TRANSITION if change is None else reason_for_change(change, event_type, actor)
    if actor.role not in rule.roles:
        # A reassigned engineer meets an office-only row, and the change explains that better than the role.
        if change in ("cancelled", "closed", "reassigned"):
            return reason_for_change(change, event_type, actor)
        return ReasonCode.ROLE_NOT_ALLOWED
    is_assignee = assignee is not None and actor.engineer_id == assignee
    if rule.assignee_only and actor.role is Role.ENGINEER and not is_assignee:
        if change == "reassigned":
            return reason_for_change(change, event_type, actor)
        return ReasonCode.ENGINEER_NOT_ASSIGNED
    if event_type == "review_resolved":
        # These histories hold no event for review, so the named one is never found.
        return ReasonCode.REVIEW_NOT_FOUND
    return ReasonCode.APPLIED


def expected_status_after(history: Sequence[HistoryEntry], event_type: str) -> WorkOrderStatus:
    """Return the order's status after an accepted `event_type`."""
    snapshots = replay(history)
    status = snapshots[-1].status if snapshots else None
    rule = LIFECYCLE[(status, event_type)]
    result = rule.to_state or status
    assert result is not None
    return result


# --- Orders in every state, each reached by a realistic history ------------------


def _path(*steps: str | HistoryEntry) -> list[HistoryEntry]:
    """Build a history from event types (with valid payloads) and explicit (type, payload) pairs."""
    return [(step, valid_payload(step)) if isinstance(step, str) else step for step in steps]


_TO_IN_PROGRESS = ("created", "assigned", "accepted", "travel_started", "arrived", "work_started")
_ASSIGN_B = ("assigned", valid_payload("assigned", ENGINEER_B))
_REASSIGN_A = ("reassigned", valid_payload("reassigned", ENGINEER_A))

# Engineer A is the assignee unless the name says otherwise.
SCENARIOS: dict[str, list[HistoryEntry]] = {
    "absent": [],
    "new": _path("created"),
    "new_after_unassign": _path("created", "assigned", "unassigned"),
    "new_after_decline": _path("created", "assigned", "declined"),
    "assigned": _path("created", "assigned"),
    "assigned_after_reassign": _path("created", _ASSIGN_B, _REASSIGN_A),
    "assigned_after_reassign_en_route": _path(
        "created", _ASSIGN_B, "accepted", "travel_started", _REASSIGN_A
    ),
    "accepted": _path("created", "assigned", "accepted"),
    "en_route": _path("created", "assigned", "accepted", "travel_started"),
    "on_site": _path("created", "assigned", "accepted", "travel_started", "arrived"),
    "in_progress": _path(*_TO_IN_PROGRESS),
    "on_hold": _path(*_TO_IN_PROGRESS, "hold_started"),
    "en_route_second_visit": _path(*_TO_IN_PROGRESS, "hold_started", "travel_started"),
    "completed": _path(*_TO_IN_PROGRESS, "completed"),
    "closed": _path(*_TO_IN_PROGRESS, "completed", "closed"),
    "reopened": _path(*_TO_IN_PROGRESS, "completed", "closed", "reopened"),
    "reopened_to_b": _path(
        *_TO_IN_PROGRESS, "completed", "closed", ("reopened", valid_payload("reopened", ENGINEER_B))
    ),
    "cancelled_new": _path("created", "cancelled"),
    "cancelled_accepted": _path("created", "assigned", "accepted", "cancelled"),
    "cancelled_on_hold": _path(*_TO_IN_PROGRESS, "hold_started", "cancelled"),
}


def base_versions(history: Sequence[HistoryEntry]) -> dict[str, int]:
    """Up-to-date and stale base versions for an order with `history`, by label.

    `stale1` missed only the last event, `stale_since_created` saw only the
    creation. Labels with an equal version are listed once.
    """
    version = len(history)
    bases = {"current": version}
    if version >= 1:
        bases["stale1"] = version - 1
    if version >= 3:
        bases["stale_since_created"] = 1
    return bases
