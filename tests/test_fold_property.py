"""Property: folding only the accepted events reproduces the state that `decide` built."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema import (
    EVENT_TYPES,
    TRANSITION_INDEX,
    Actor,
    DecisionStatus,
    ReasonCode,
    WorkOrderState,
    WorkOrderStatus,
    apply_event,
    clamp_effective_time,
    decide,
    parse_payload,
)
from schema_helpers import (
    ACTORS,
    ENGINEER_A,
    ENGINEER_B,
    LIFECYCLE,
    T0,
    UNKNOWN_TYPE,
    WORK_ORDER_ID,
    HistoryEntry,
    expected_reason,
    expected_status,
    invalid_payload,
    make_proposal,
    valid_payload,
)

# Deterministic, with few enough runs for the quick test suite.
PROPERTY_SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SKEW_TOLERANCE = dt.timedelta(minutes=2)
ALL_TYPES = (*EVENT_TYPES, UNKNOWN_TYPE)


@dataclasses.dataclass
class Step:
    """One proposal of a generated run and what `decide` did with it."""

    event_type: str
    payload: dict[str, Any]
    payload_is_valid: bool
    actor: Actor
    base_version: int
    causation: DecisionStatus | None
    effective_time: dt.datetime
    state_before: WorkOrderState | None
    status: DecisionStatus
    reason_code: ReasonCode
    state_after: WorkOrderState | None


# Event types that move an order forward along its lifecycle, by current status.
FORWARD = {
    None: ["created"],
    WorkOrderStatus.NEW: ["assigned"],
    WorkOrderStatus.ASSIGNED: ["accepted"],
    WorkOrderStatus.ACCEPTED: ["travel_started"],
    WorkOrderStatus.EN_ROUTE: ["arrived"],
    WorkOrderStatus.ON_SITE: ["work_started"],
    WorkOrderStatus.IN_PROGRESS: ["hold_started", "completed"],
    WorkOrderStatus.ON_HOLD: ["work_resumed", "travel_started"],
    WorkOrderStatus.COMPLETED: ["closed"],
    WorkOrderStatus.CLOSED: ["reopened"],
}


def _draw_event_and_actor(data: st.DataObject, state: WorkOrderState | None) -> tuple[str, Actor]:
    """Draw an event type and its actor.

    Three draws in four follow the lifecycle. They pick a type allowed in the
    current state, mostly one that moves the order forward and a cancellation
    only rarely. The actor's role may record that type, but an engineer may
    still not be the assignee. The other draws pick any type, including a
    cancellation or an unknown type, and any actor.
    """
    status = state.status if state else None
    allowed_now = sorted(event_type for (from_state, event_type) in LIFECYCLE if from_state == status)
    follow = data.draw(st.sampled_from([True, True, True, False]), label="follow lifecycle")
    if not follow or not allowed_now:
        event_type = data.draw(st.sampled_from(ALL_TYPES), label="event type")
        return event_type, data.draw(st.sampled_from(list(ACTORS.values())), label="actor")

    others = [event_type for event_type in allowed_now if event_type != "cancelled"]
    cancellation = [event_type for event_type in allowed_now if event_type == "cancelled"]
    choices = (FORWARD.get(status, []) * max(len(others), 1) + others) * 4 + cancellation
    event_type = data.draw(st.sampled_from(choices), label="event type")
    rule = LIFECYCLE[(status, event_type)]
    permitted = [actor for actor in ACTORS.values() if actor.role in rule.roles]
    return event_type, data.draw(st.sampled_from(permitted), label="actor")


INVALID = "invalid payload"


def _draw_payload(data: st.DataObject, event_type: str) -> tuple[dict[str, Any], bool]:
    # One draw in ten gives an invalid payload. The others name the engineer of assignment payloads.
    choice = data.draw(st.sampled_from([ENGINEER_A, ENGINEER_B, None] * 3 + [INVALID]), label="payload")
    if choice == INVALID:
        return invalid_payload(event_type), False
    return valid_payload(event_type, choice), True


def _draw_base_version(data: st.DataObject, version: int) -> int:
    # Versions the device missed: 0 is up to date, -1 claims a version the server does not have.
    missed = data.draw(st.sampled_from([0, 0, 0, 0, 1, 2, 4, -1]), label="versions missed")
    return max(0, version - missed)


def _draw_causation(data: st.DataObject, steps: list[Step]) -> DecisionStatus | None:
    # One proposal in ten follows an earlier proposal of the same run.
    if not steps or data.draw(st.integers(0, 9), label="has causation") != 0:
        return None
    earlier = data.draw(st.sampled_from(steps), label="causing step")
    return earlier.status


def run_proposals(data: st.DataObject) -> list[Step]:
    """Decide a generated run of proposals on one order, each against the state the previous left."""
    steps: list[Step] = []
    state: WorkOrderState | None = None
    for index in range(data.draw(st.integers(1, 30), label="run length")):
        event_type, actor = _draw_event_and_actor(data, state)
        payload, payload_is_valid = _draw_payload(data, event_type)
        version = state.version if state else 0
        base_version = _draw_base_version(data, version)
        causation = _draw_causation(data, steps)

        # Devices' clocks drift: occurred_at may lie before the last event or ahead of the server.
        recorded_at = T0 + dt.timedelta(minutes=10 * index)
        drift = dt.timedelta(minutes=data.draw(st.integers(-30, 30), label="clock drift in minutes"))
        occurred_at = recorded_at + drift
        effective_time = clamp_effective_time(
            occurred_at, recorded_at, state.updated_at if state else None, SKEW_TOLERANCE
        )

        proposal = make_proposal(event_type, base_version, payload, occurred_at=occurred_at)
        causation_arg = (causation, str(uuid.uuid4())) if causation else None
        outcome = decide(state, proposal, actor, effective_time, causation_arg)

        steps.append(
            Step(
                event_type=event_type,
                payload=payload,
                payload_is_valid=payload_is_valid,
                actor=actor,
                base_version=base_version,
                causation=causation,
                effective_time=effective_time,
                state_before=state,
                status=outcome.status,
                reason_code=outcome.reason_code,
                state_after=outcome.state,
            )
        )
        state = outcome.state
    return steps


def fold_accepted(steps: list[Step]) -> WorkOrderState | None:
    """Fold the accepted steps from scratch, each with the target state of its table row."""
    state: WorkOrderState | None = None
    for step in steps:
        if step.status is not DecisionStatus.ACCEPTED:
            continue
        row = TRANSITION_INDEX[(state.status if state else None, step.event_type)]
        payload = parse_payload(step.event_type, step.payload)
        state = apply_event(state, WORK_ORDER_ID, payload, row.to_state, step.effective_time)
    return state


@PROPERTY_SETTINGS
@given(st.data())
def test_fold_reproduces_decided_state(data: st.DataObject) -> None:
    steps = run_proposals(data)
    accepted = [step for step in steps if step.status is DecisionStatus.ACCEPTED]
    final_state = steps[-1].state_after

    folded = fold_accepted(steps)

    assert folded == final_state
    assert (final_state.version if final_state else 0) == len(accepted)
    for step in steps:
        if step.status is DecisionStatus.ACCEPTED:
            assert step.state_after is not None
            assert step.state_after.version == (step.state_before.version if step.state_before else 0) + 1
        else:
            assert step.state_after == step.state_before


@PROPERTY_SETTINGS
@given(st.data())
def test_decisions_follow_policy(data: st.DataObject) -> None:
    steps = run_proposals(data)
    history: list[HistoryEntry] = []

    for step in steps:
        code = expected_reason(
            history, step.event_type, step.payload_is_valid, step.actor, step.base_version, step.causation
        )
        assert step.reason_code is code
        assert step.status is expected_status(code)
        if step.status is DecisionStatus.ACCEPTED:
            history.append((step.event_type, step.payload))

    updated = [step.state_after.updated_at for step in steps if step.state_after is not None]
    assert updated == sorted(updated)
