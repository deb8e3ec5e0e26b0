"""Conformance vectors: inputs and expected outputs of the arbitration policy, produced by running it.

Every vector is built from fixed instants and uuid5 ids, so a re-export gives
the same bytes. The expected outputs come from the real `decide`,
`clamp_effective_time` and `content_fingerprint`, so the vectors restate the
Python implementation for ports, not an independent policy.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from shared_schema import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    TRANSITION_INDEX,
    Actor,
    DecisionStatus,
    HeldReview,
    ProposedEvent,
    ReasonCode,
    Role,
    WorkOrderState,
    WorkOrderStatus,
    apply_event,
    clamp_effective_time,
    content_fingerprint,
    decide,
    parse_payload,
)
from shared_schema.payloads import ReviewResolution

from .builders import ENGINEER_A, ENGINEER_B, T0, UNKNOWN_TYPE, WORK_ORDER_ID, invalid_payload, valid_payload

# Namespace of every uuid5 in the vectors. Each name is a vector id or a label under `idempotency/` or `causation/`.
VECTOR_NAMESPACE = uuid.UUID("8a4f7a52-3c1e-5d59-9a0b-6f1d2e3c4b5a")
DECIDED_AT = T0 + dt.timedelta(hours=1)
DEVICE_ID = "tablet-1"
PLUS_TWO_HOURS = dt.timezone(dt.timedelta(hours=2))

S = WorkOrderStatus
History = Sequence[tuple[str, dict[str, Any]]]


class Causation(msgspec.Struct, frozen=True, kw_only=True):
    """The stored decision on the event that the proposal's `causation_id` names."""

    status: DecisionStatus
    client_event_id: uuid.UUID


class ExpectedDecision(msgspec.Struct, kw_only=True):
    """Output of `decide`. `state_after` is the new state when accepted, else the unchanged state."""

    status: DecisionStatus
    reason_code: ReasonCode
    message: str
    state_after: WorkOrderState | None


class DecisionVector(msgspec.Struct, kw_only=True):
    """One call of `decide(state_before, event, actor, effective_time, causation, review)` and its result.

    `causation` is null when the event names no earlier decision of the
    same subject. `review` is what the server found for the held event a
    `review_resolved` names, null when it found none.
    """

    id: str
    path: str
    state_before: WorkOrderState | None
    actor: Actor
    event: ProposedEvent
    effective_time: dt.datetime
    causation: Causation | None = None
    review: HeldReview | None = None
    expected: ExpectedDecision


class IdempotencyVector(msgspec.Struct, kw_only=True):
    """Two proposals from one subject with the same `client_event_id`, and what the second one gets."""

    id: str
    first: ProposedEvent
    second: ProposedEvent
    expected: Literal["replay", "idempotency_key_reused"]


class EffectiveTimeVector(msgspec.Struct, kw_only=True):
    """One call of `clamp_effective_time`: the device's instant clamped by the server's clock and the stream."""

    id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    previous_effective_time: dt.datetime | None
    skew_tolerance_seconds: int
    expected_effective_time: dt.datetime


def vector_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(VECTOR_NAMESPACE, name)


def _actor(label: str) -> Actor:
    if label == "engineer_assignee":
        return Actor(subject=ENGINEER_A, role=Role.ENGINEER, engineer_id=ENGINEER_A)
    if label == "engineer_other":
        return Actor(subject=ENGINEER_B, role=Role.ENGINEER, engineer_id=ENGINEER_B)
    return Actor(subject=f"{label}-1", role=Role(label))


# Every role, with the engineer once as the order's assignee and once as another engineer.
ACTOR_LABELS = ("dispatcher", "manager", "admin", "engineer_assignee", "engineer_other", "system")


def _steps(*steps: str | tuple[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(step, valid_payload(step)) if isinstance(step, str) else step for step in steps]


_TO_IN_PROGRESS = ("created", "assigned", "accepted", "travel_started", "arrived", "work_started")
_REASSIGN_B = ("reassigned", valid_payload("reassigned", ENGINEER_B))

# One history per status, with engineer A as the assignee where the status has one.
STATUS_HISTORIES: dict[WorkOrderStatus, list[tuple[str, dict[str, Any]]]] = {
    S.NEW: _steps("created"),
    S.ASSIGNED: _steps("created", "assigned"),
    S.ACCEPTED: _steps("created", "assigned", "accepted"),
    S.EN_ROUTE: _steps("created", "assigned", "accepted", "travel_started"),
    S.ON_SITE: _steps("created", "assigned", "accepted", "travel_started", "arrived"),
    S.IN_PROGRESS: _steps(*_TO_IN_PROGRESS),
    S.ON_HOLD: _steps(*_TO_IN_PROGRESS, "hold_started"),
    S.COMPLETED: _steps(*_TO_IN_PROGRESS, "completed"),
    S.CLOSED: _steps(*_TO_IN_PROGRESS, "completed", "closed"),
    S.CANCELLED: _steps("created", "assigned", "accepted", "cancelled"),
}


def fold(history: History) -> WorkOrderState | None:
    """Fold accepted events into a state, one minute apart from T0, taking target states from the table."""
    state: WorkOrderState | None = None
    for index, (event_type, payload) in enumerate(history):
        row = TRANSITION_INDEX[(state.status if state else None, event_type)]
        effective_time = T0 + dt.timedelta(minutes=index)
        state = apply_event(state, WORK_ORDER_ID, parse_payload(event_type, payload), row.to_state, effective_time)
    return state


def _vector(
    vector_id: str,
    path: str,
    state: WorkOrderState | None,
    actor: Actor,
    event_type: str,
    *,
    base_version: int | None = None,
    payload: dict[str, Any] | None = None,
    causation: Causation | None = None,
    review: HeldReview | None = None,
) -> DecisionVector:
    """Build the proposal, run the real `decide` on it and record the result."""
    if base_version is None:
        base_version = state.version if state else 0
    event = ProposedEvent(
        client_event_id=vector_uuid(vector_id),
        work_order_id=WORK_ORDER_ID,
        type=event_type,
        payload=valid_payload(event_type) if payload is None else payload,
        occurred_at=DECIDED_AT,
        base_version=base_version,
        device_id=DEVICE_ID,
        causation_id=causation.client_event_id if causation else None,
        schema_version=SCHEMA_VERSION,
    )
    causation_pair = (causation.status, str(causation.client_event_id)) if causation else None
    outcome = decide(state, event, actor, DECIDED_AT, causation_pair, review)
    return DecisionVector(
        id=vector_id,
        path=path,
        state_before=state,
        actor=actor,
        event=event,
        effective_time=DECIDED_AT,
        causation=causation,
        review=review,
        expected=ExpectedDecision(
            status=outcome.status,
            reason_code=outcome.reason_code,
            message=outcome.message,
            state_after=outcome.state,
        ),
    )


def _held_review(status: DecisionStatus = DecisionStatus.NEEDS_REVIEW, **changes: Any) -> HeldReview:
    return HeldReview(work_order_id=changes.pop("work_order_id", WORK_ORDER_ID), status=status, **changes)


def matrix_vectors() -> list[DecisionVector]:
    """Decide every event type from every status (and the absent order) for every role, up to date.

    The grid covers each transition row with each role, allowed or not, and
    every (status, event type) pair the table has no row for. A
    `review_resolved` finds an unresolved held event on the order.
    """
    states: list[tuple[str, WorkOrderState | None]] = [("absent", None)]
    states.extend((status.value, fold(history)) for status, history in STATUS_HISTORIES.items())
    vectors = []
    for state_label, state in states:
        for event_type in EVENT_TYPES:
            review = _held_review() if event_type == "review_resolved" else None
            for actor_label in ACTOR_LABELS:
                vector_id = f"matrix/{state_label}/{event_type}/{actor_label}"
                vectors.append(_vector(vector_id, "matrix", state, _actor(actor_label), event_type, review=review))
    return vectors


def arbitration_vectors() -> list[DecisionVector]:
    """Decide one proposal for every branch of `decide` that the up-to-date grid does not reach."""
    dispatcher, manager = _actor("dispatcher"), _actor("manager")
    engineer_a = _actor("engineer_assignee")

    en_route = fold(STATUS_HISTORIES[S.EN_ROUTE])
    assigned = fold(STATUS_HISTORIES[S.ASSIGNED])
    new = fold(STATUS_HISTORIES[S.NEW])
    closed = fold(STATUS_HISTORIES[S.CLOSED])
    unassigned = fold(_steps("created", "assigned", "unassigned"))
    cancelled_before_work = fold(STATUS_HISTORIES[S.CANCELLED])
    cancelled_on_hold = fold(_steps(*_TO_IN_PROGRESS, "hold_started", "cancelled"))
    reassigned_to_b = fold(_steps("created", "assigned", _REASSIGN_B))
    reassigned_en_route = fold(_steps("created", "assigned", "accepted", "travel_started", _REASSIGN_B))
    assert None not in (en_route, assigned, new, closed, unassigned, cancelled_before_work)
    assert None not in (cancelled_on_hold, reassigned_to_b, reassigned_en_route)

    earlier = vector_uuid("causation/earlier-event")

    return [
        # A stale device whose event is still valid in the current state.
        _vector("stale/still-valid", "stale_applied", en_route, engineer_a, "arrived", base_version=2),
        _vector("stale/superseded", "stale", unassigned, dispatcher, "reassigned", base_version=2),
        _vector("stale/cancelled-meanwhile", "stale", cancelled_before_work, engineer_a, "declined", base_version=2),
        _vector(
            "stale/cancelled-meanwhile-office",
            "stale",
            cancelled_before_work,
            dispatcher,
            "reassigned",
            base_version=3,
        ),
        _vector(
            "stale/work-on-cancelled-order",
            "stale_field_work",
            cancelled_on_hold,
            engineer_a,
            "work_resumed",
            base_version=7,
        ),
        _vector(
            "stale/reassigned-meanwhile",
            "stale_assignee",
            reassigned_to_b,
            engineer_a,
            "accepted",
            base_version=2,
        ),
        _vector(
            "stale/work-on-reassigned-order",
            "stale_field_work",
            reassigned_en_route,
            engineer_a,
            "arrived",
            base_version=4,
        ),
        # An engineer-side type on a row only the office may use: the reassignment explains it.
        _vector("stale/office-row-reassigned", "stale_role", reassigned_to_b, engineer_a, "note_added", base_version=2),
        _vector("stale/closed-meanwhile", "stale", closed, dispatcher, "priority_changed", base_version=7),
        _vector("stale/work-on-closed-order", "stale_field_work", closed, engineer_a, "parts_used", base_version=7),
        _vector("stale/cancelled-meanwhile-manager", "stale", cancelled_on_hold, manager, "closed", base_version=7),
        _vector(
            "causation/rejected",
            "causation",
            assigned,
            engineer_a,
            "accepted",
            causation=Causation(status=DecisionStatus.REJECTED, client_event_id=earlier),
        ),
        _vector(
            "causation/in-review",
            "causation",
            assigned,
            engineer_a,
            "accepted",
            causation=Causation(status=DecisionStatus.NEEDS_REVIEW, client_event_id=earlier),
        ),
        _vector(
            "causation/accepted",
            "causation",
            assigned,
            engineer_a,
            "accepted",
            causation=Causation(status=DecisionStatus.ACCEPTED, client_event_id=earlier),
        ),
        _vector("order/unknown", "existence", None, engineer_a, "accepted"),
        _vector("order/exists", "existence", new, dispatcher, "created", base_version=0),
        _vector("order/base-version-ahead", "base_version", en_route, engineer_a, "arrived", base_version=9),
        _vector("order/base-version-ahead-absent", "base_version", None, dispatcher, "created", base_version=1),
        _vector("payload/unknown-field", "payload", new, dispatcher, "assigned", payload=invalid_payload("assigned")),
        _vector("payload/wrong-type", "payload", new, dispatcher, "assigned", payload={"engineer_id": 5}),
        _vector("payload/missing-field", "payload", new, dispatcher, "assigned", payload={}),
        _vector("payload/invalid-on-absent-order", "payload", None, engineer_a, "accepted", payload={"x": 1}),
        _vector("type/unknown", "event_type", en_route, engineer_a, UNKNOWN_TYPE),
        _vector("type/unknown-on-absent-order", "event_type", None, dispatcher, UNKNOWN_TYPE),
        _vector("review/found", "review", en_route, dispatcher, "review_resolved", review=_held_review()),
        _vector("review/not-found", "review", en_route, dispatcher, "review_resolved"),
        _vector(
            "review/not-held",
            "review",
            en_route,
            dispatcher,
            "review_resolved",
            review=_held_review(DecisionStatus.REJECTED),
        ),
        _vector(
            "review/other-order",
            "review",
            en_route,
            dispatcher,
            "review_resolved",
            review=_held_review(work_order_id="wo-2"),
        ),
        _vector(
            "review/already-resolved",
            "review",
            en_route,
            dispatcher,
            "review_resolved",
            review=_held_review(resolution=ReviewResolution.DISMISSED),
        ),
    ]


def idempotency_vectors() -> list[IdempotencyVector]:
    """Pair a proposal with a second one under the same id; only `correlation_id` may differ for a replay."""
    first = ProposedEvent(
        client_event_id=vector_uuid("idempotency/key"),
        work_order_id=WORK_ORDER_ID,
        type="parts_used",
        payload=valid_payload("parts_used"),
        occurred_at=DECIDED_AT,
        base_version=4,
        device_id=DEVICE_ID,
        correlation_id="request-1",
        schema_version=SCHEMA_VERSION,
    )
    replace = msgspec.structs.replace
    seconds: list[tuple[str, ProposedEvent]] = [
        ("identical", first),
        ("new-correlation-id", replace(first, correlation_id="request-2")),
        ("no-correlation-id", replace(first, correlation_id=None)),
        ("other-payload", replace(first, payload={**first.payload, "quantity": 2})),
        ("other-base-version", replace(first, base_version=5)),
        ("other-type", replace(first, type="time_logged", payload=valid_payload("time_logged"))),
        ("other-order", replace(first, work_order_id="wo-2")),
        ("other-device", replace(first, device_id="tablet-2")),
        ("other-causation", replace(first, causation_id=vector_uuid("idempotency/cause"))),
        # The same instant written with another offset is other content: compare the offset too.
        ("same-instant-other-offset", replace(first, occurred_at=DECIDED_AT.astimezone(PLUS_TWO_HOURS))),
    ]
    return [
        IdempotencyVector(
            id=f"idempotency/{label}",
            first=first,
            second=second,
            expected=_second_outcome(first, second),
        )
        for label, second in seconds
    ]


def _second_outcome(first: ProposedEvent, second: ProposedEvent) -> Literal["replay", "idempotency_key_reused"]:
    if content_fingerprint(first) == content_fingerprint(second):
        return "replay"
    return "idempotency_key_reused"


def effective_time_vectors() -> list[EffectiveTimeVector]:
    """Clamp device instants against the server's clock (30 s tolerance) and the stream's previous time."""
    recorded = DECIDED_AT
    tolerance = 30
    cases: list[tuple[str, dt.datetime, dt.datetime | None]] = [
        ("in-the-past", recorded - dt.timedelta(hours=3), None),
        ("ahead-within-tolerance", recorded + dt.timedelta(seconds=20), None),
        ("ahead-beyond-tolerance", recorded + dt.timedelta(hours=5), None),
        ("before-previous-event", recorded - dt.timedelta(hours=3), recorded - dt.timedelta(hours=1)),
        ("after-previous-event", recorded - dt.timedelta(minutes=5), recorded - dt.timedelta(hours=1)),
        ("other-offset", (recorded - dt.timedelta(minutes=10)).astimezone(PLUS_TWO_HOURS), None),
    ]
    return [
        EffectiveTimeVector(
            id=f"effective-time/{label}",
            occurred_at=occurred,
            recorded_at=recorded,
            previous_effective_time=previous,
            skew_tolerance_seconds=tolerance,
            expected_effective_time=clamp_effective_time(
                occurred, recorded, previous, dt.timedelta(seconds=tolerance)
            ),
        )
        for label, occurred, previous in cases
    ]
