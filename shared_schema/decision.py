"""The arbitration policy: one pure function that decides a proposed event.

The server calls `decide` to rule on every proposal; the SDK calls the same
function to apply events optimistically while offline. Time comes in as an
argument and nothing here touches a clock, a database or the network.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from .envelope import PayloadError, ProposedEvent, parse_payload
from .payloads import EVENT_PAYLOADS, Payload, ReviewResolved
from .reasons import REASON_SENTENCES, REASON_STATUS, DecisionStatus, ReasonCode
from .reviews import HeldReview
from .states import Role
from .transitions import (
    FIELD_WORK_TYPES,
    ROLES_BY_EVENT_TYPE,
    TRANSITION_INDEX,
    Transition,
)
from .work_order import WorkOrderState, apply_event


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Proposer of an event, taken from the verified token."""

    subject: str
    role: Role
    engineer_id: str | None = None


class Arbitration(msgspec.Struct, kw_only=True):
    """The outcome of `decide`: status, reason and the state afterwards.

    `state` is the new state when the event was accepted and the unchanged
    current state otherwise (None for an order that does not exist).
    """

    status: DecisionStatus
    reason_code: ReasonCode
    message: str
    state: WorkOrderState | None
    payload: Payload | None = None


def _sentence(
    code: ReasonCode,
    event: ProposedEvent,
    actor: Actor,
    state: WorkOrderState | None,
    detail: str = "",
) -> str:
    return REASON_SENTENCES[code].format(
        type=event.type,
        state=state.status.value if state else "absent",
        version=state.version if state else 0,
        base_version=event.base_version,
        role=actor.role.value,
        engineer=(state.engineer_id if state and state.engineer_id else "nobody"),
        detail=detail,
    )


def _result(
    code: ReasonCode,
    event: ProposedEvent,
    actor: Actor,
    state: WorkOrderState | None,
    detail: str = "",
    payload: Payload | None = None,
) -> Arbitration:
    return Arbitration(
        status=REASON_STATUS[code],
        reason_code=code,
        message=_sentence(code, event, actor, state, detail),
        state=state,
        payload=payload,
    )


def reject_invalid_payload(event: ProposedEvent, actor: Actor, state: WorkOrderState | None, detail: str) -> Arbitration:
    """Build the `invalid_payload` rejection of a payload that failed a check made before `decide`.

    The server uses it for an older event whose payload does not match the
    layout of its `schema_version`.
    """
    return _result(ReasonCode.INVALID_PAYLOAD, event, actor, state, detail=detail)


def _stale_reason(event: ProposedEvent, actor: Actor, state: WorkOrderState) -> ReasonCode | None:
    """Name the change made after the device's `base_version`, if one explains a conflict.

    Field work recorded by an engineer goes to review, because it happened on
    site and must not be lost; any other stale proposal is rejected.
    """
    base = event.base_version
    if base >= state.version:
        return None
    field_work = event.type in FIELD_WORK_TYPES and actor.role is Role.ENGINEER
    if state.cancelled_version > base:
        return ReasonCode.WORK_ON_CANCELLED_ORDER if field_work else ReasonCode.CANCELLED_MEANWHILE
    if state.closed_version > base:
        return ReasonCode.WORK_ON_CLOSED_ORDER if field_work else ReasonCode.CLOSED_MEANWHILE
    # NOTE: judged from the current assignee only, so an engineer who never had
    # the order also gets a "reassigned" reason when the assignment changed.
    reassigned_away = (
        state.assignment_version > base and actor.role is Role.ENGINEER and state.engineer_id != actor.engineer_id
    )
    if reassigned_away:
        return ReasonCode.WORK_ON_REASSIGNED_ORDER if field_work else ReasonCode.REASSIGNED_MEANWHILE
    return ReasonCode.SUPERSEDED


def decide(
    state: WorkOrderState | None,
    event: ProposedEvent,
    actor: Actor,
    effective_time: dt.datetime,
    causation: tuple[DecisionStatus, str] | None = None,
    review: HeldReview | None = None,
) -> Arbitration:
    """Decide one proposed event against the current state of its order.

    `causation` is the status and client_event_id of the event this one
    follows, when that event is known. `review` is what the caller found
    about the held event that a `review_resolved` proposal names, None when
    it found no decision. Checks run in a fixed order so each proposal gets
    exactly one reason. The order is the event type, the payload, the
    existence of the order, the device's version, causation, the role, the
    transition, the assignee, and last the review that a `review_resolved`
    names.
    """
    if event.type not in EVENT_PAYLOADS:
        return _result(ReasonCode.UNKNOWN_EVENT_TYPE, event, actor, state)
    try:
        payload = parse_payload(event.type, event.payload)
    except PayloadError as exc:
        return _result(ReasonCode.INVALID_PAYLOAD, event, actor, state, detail=str(exc))

    if state is None and event.type != "created":
        return _result(ReasonCode.UNKNOWN_WORK_ORDER, event, actor, state)
    if state is not None and event.type == "created":
        return _result(ReasonCode.WORK_ORDER_EXISTS, event, actor, state)
    current_version = state.version if state else 0
    if event.base_version > current_version:
        return _result(ReasonCode.BASE_VERSION_AHEAD, event, actor, state)

    if causation is not None:
        causation_status, causation_id = causation
        if causation_status is DecisionStatus.REJECTED:
            return _result(ReasonCode.CAUSATION_REJECTED, event, actor, state, detail=causation_id)
        if causation_status is DecisionStatus.NEEDS_REVIEW:
            return _result(ReasonCode.CAUSATION_IN_REVIEW, event, actor, state, detail=causation_id)

    if actor.role not in ROLES_BY_EVENT_TYPE[event.type]:
        return _result(ReasonCode.ROLE_NOT_ALLOWED, event, actor, state)

    status = state.status if state else None
    row = TRANSITION_INDEX.get((status, event.type))
    if row is None:
        assert state is not None  # "created" has a row for the absent state
        stale = _stale_reason(event, actor, state)
        return _result(stale or ReasonCode.INVALID_TRANSITION, event, actor, state)

    if actor.role not in row.roles:
        # An engineer whose order was reassigned meets an office-only row; the
        # reassignment explains the conflict better than the role does.
        stale = _stale_reason(event, actor, state) if state else None
        if stale is not None and stale is not ReasonCode.SUPERSEDED:
            return _result(stale, event, actor, state)
        return _result(ReasonCode.ROLE_NOT_ALLOWED, event, actor, state)
    if _fails_assignee_guard(row, actor, state):
        assert state is not None
        stale = _stale_reason(event, actor, state)
        if stale in (ReasonCode.WORK_ON_REASSIGNED_ORDER, ReasonCode.REASSIGNED_MEANWHILE):
            return _result(stale, event, actor, state)
        return _result(ReasonCode.ENGINEER_NOT_ASSIGNED, event, actor, state)
    if isinstance(payload, ReviewResolved):
        problem = _review_problem(payload, review, event.work_order_id)
        if problem is not None:
            code, detail = problem
            return _result(code, event, actor, state, detail=detail)

    new_state = apply_event(state, event.work_order_id, payload, row.to_state, effective_time)
    return _result(ReasonCode.APPLIED, event, actor, new_state, payload=payload)


def _review_problem(
    payload: ReviewResolved, review: HeldReview | None, work_order_id: str
) -> tuple[ReasonCode, str] | None:
    """Return the reason and detail that reject a resolution, or None when the named event waits for review here."""
    named = f"client_event_id {payload.client_event_id} from subject {payload.subject!r}"
    if review is None or review.status is not DecisionStatus.NEEDS_REVIEW or review.work_order_id != work_order_id:
        return ReasonCode.REVIEW_NOT_FOUND, named
    if review.resolution is not None:
        return ReasonCode.REVIEW_ALREADY_RESOLVED, f"{named} was already resolved as {review.resolution.value}"
    return None


def _fails_assignee_guard(row: Transition, actor: Actor, state: WorkOrderState | None) -> bool:
    if not row.assigned_engineer_only or actor.role is not Role.ENGINEER:
        return False
    return state is None or state.engineer_id is None or state.engineer_id != actor.engineer_id


def clamp_effective_time(
    occurred_at: dt.datetime,
    recorded_at: dt.datetime,
    previous_effective_time: dt.datetime | None,
    skew_tolerance: dt.timedelta,
) -> dt.datetime:
    """Clamp a device's `occurred_at` into the time SLA and KPI use.

    The result is no later than `recorded_at + skew_tolerance` (a device clock
    running ahead cannot push events into the future) and no earlier than the
    stream's previous effective time (the stream's times never go backwards).
    """
    try:
        occurred = occurred_at.astimezone(dt.timezone.utc)
    except OverflowError:
        # The instant lies before year 1 or after year 9999 once in UTC, so it
        # is pinned to the matching end of the datetime range.
        edge = dt.datetime.min if occurred_at.year == 1 else dt.datetime.max
        occurred = edge.replace(tzinfo=dt.timezone.utc)
    result = min(occurred, recorded_at + skew_tolerance)
    if previous_effective_time is not None and result < previous_effective_time:
        result = previous_effective_time
    return result.astimezone(dt.timezone.utc)
