"""Arbitration by `decide`: every state, event type, role and base version, plus the offline conflicts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
import uuid

import pytest

from shared_schema import (
    EVENT_TYPES,
    REASON_SENTENCES,
    REASON_STATUS,
    Actor,
    Arbitration,
    DecisionStatus,
    ReasonCode,
    Role,
    WorkOrderStatus,
    clamp_effective_time,
    content_fingerprint,
    decide,
)
from schema_helpers import (
    ACTORS,
    ADMIN,
    DISPATCHER,
    ENGINEER_A,
    ENGINEER_B,
    ENGINEER_ON_A,
    ENGINEER_ON_B,
    MANAGER,
    SCENARIOS,
    T0,
    UNKNOWN_TYPE,
    base_versions,
    expected_reason,
    expected_status,
    expected_status_after,
    fold_history,
    invalid_payload,
    make_actor,
    make_proposal,
)

EFFECTIVE_TIME = T0 + dt.timedelta(hours=1)
CAUSATION_ID = "5f0c8f5e-0000-4000-8000-000000000001"
STATES = {name: fold_history(history) for name, history in SCENARIOS.items()}


# --- Every combination against the restated policy ------------------------------


def _table_cases() -> list[pytest.param]:
    cases = []
    for scenario, history in SCENARIOS.items():
        for base_label, base_version in base_versions(history).items():
            for event_type in (*EVENT_TYPES, UNKNOWN_TYPE):
                case_id = f"{scenario}-{base_label}-{event_type}"
                cases.append(pytest.param(scenario, base_version, event_type, id=case_id))
    return cases


TABLE_CASES = _table_cases()


# Each case runs every actor in ACTORS: office roles, the admin, the assignee
# and an engineer who is not (or no longer) assigned.
@pytest.mark.parametrize(("scenario", "base_version", "event_type"), TABLE_CASES)
def test_decide_matches_policy(scenario: str, base_version: int, event_type: str) -> None:
    history = SCENARIOS[scenario]
    state = STATES[scenario]

    for actor_label, actor in ACTORS.items():
        proposal = make_proposal(event_type, base_version)

        outcome = decide(state, proposal, actor, EFFECTIVE_TIME)

        code = expected_reason(history, event_type, True, actor, base_version)
        assert outcome.reason_code is code, f"actor {actor_label}"
        assert outcome.status is expected_status(code), f"actor {actor_label}"
        if code is ReasonCode.APPLIED:
            assert outcome.state is not None, f"actor {actor_label}"
            assert outcome.state.status is expected_status_after(history, event_type), f"actor {actor_label}"
            assert outcome.state.version == len(history) + 1, f"actor {actor_label}"
        else:
            assert outcome.state == state, f"actor {actor_label}"


def test_table_covers_each_dimension() -> None:
    scenarios = {param.values[0] for param in TABLE_CASES}
    event_types = {param.values[2] for param in TABLE_CASES}
    stale = [param for param in TABLE_CASES if param.values[1] < len(SCENARIOS[param.values[0]])]
    assignees = {state.engineer_id for state in STATES.values() if state}

    assert scenarios == set(SCENARIOS)
    assert event_types == {*EVENT_TYPES, UNKNOWN_TYPE}
    assert {state.status for state in STATES.values() if state} == set(WorkOrderStatus)
    assert len(stale) > 0
    assert {ENGINEER_A, ENGINEER_B, None} <= assignees
    assert {actor.role for actor in ACTORS.values()} == set(Role)


# --- Hand-written cases ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One proposal on an order in `scenario`, with its expected reason.

    The device missed the last `missed` events unless `base_version` is set.
    A `payload` of None stands for a valid payload of `event_type`.
    """

    name: str
    scenario: str
    event_type: str
    actor: Actor
    expected: ReasonCode
    missed: int = 0
    payload: dict | None = None
    causation: DecisionStatus | None = None
    base_version: int | None = None


CASES = [
    # Field work on an order that the office cancelled while the device was offline.
    Case("time on cancelled order", "cancelled_on_hold", "time_logged", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CANCELLED_ORDER, missed=1),
    Case("travel on cancelled order", "cancelled_accepted", "travel_started", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CANCELLED_ORDER, missed=1),
    Case("signature on cancelled order", "cancelled_on_hold", "signature_captured", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CANCELLED_ORDER, missed=1),
    # Field work by an engineer whose order went to someone else meanwhile.
    Case("arrival after reassignment", "assigned_after_reassign_en_route", "arrived", ENGINEER_ON_B,
         ReasonCode.WORK_ON_REASSIGNED_ORDER, missed=1),
    Case("note after reassignment", "assigned_after_reassign_en_route", "note_added", ENGINEER_ON_B,
         ReasonCode.WORK_ON_REASSIGNED_ORDER, missed=1),
    Case("parts after reopen to other", "reopened_to_b", "parts_used", ENGINEER_ON_A,
         ReasonCode.WORK_ON_REASSIGNED_ORDER, missed=1),
    Case("arrival after unassignment", "new_after_unassign", "arrived", ENGINEER_ON_A,
         ReasonCode.WORK_ON_REASSIGNED_ORDER, missed=1),
    # Field work on an order closed meanwhile.
    Case("parts on closed order", "closed", "parts_used", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CLOSED_ORDER, missed=1),
    Case("time on closed order", "closed", "time_logged", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CLOSED_ORDER, missed=1),
    # Stale proposals that are not field work lose to the server's state.
    Case("reassign after cancel", "cancelled_accepted", "reassigned", DISPATCHER,
         ReasonCode.CANCELLED_MEANWHILE, missed=1),
    Case("accept after cancel", "cancelled_new", "accepted", ENGINEER_ON_A,
         ReasonCode.CANCELLED_MEANWHILE, missed=1),
    Case("accept after reassignment", "assigned_after_reassign", "accepted", ENGINEER_ON_B,
         ReasonCode.REASSIGNED_MEANWHILE, missed=1),
    Case("decline after reassignment", "assigned_after_reassign", "declined", ENGINEER_ON_B,
         ReasonCode.REASSIGNED_MEANWHILE, missed=1),
    Case("priority after close", "closed", "priority_changed", DISPATCHER,
         ReasonCode.CLOSED_MEANWHILE, missed=1),
    Case("signature after close", "closed", "signature_captured", ENGINEER_ON_A,
         ReasonCode.WORK_ON_CLOSED_ORDER, missed=1),
    Case("office note after cancel", "cancelled_new", "note_added", DISPATCHER,
         ReasonCode.CANCELLED_MEANWHILE, missed=1),
    Case("unassign after work start", "in_progress", "unassigned", DISPATCHER,
         ReasonCode.SUPERSEDED, missed=1),
    Case("accept after travel", "en_route", "accepted", ENGINEER_ON_A,
         ReasonCode.SUPERSEDED, missed=1),
    # Stale but still valid: the server accepts it.
    Case("stale priority change", "in_progress", "priority_changed", DISPATCHER,
         ReasonCode.APPLIED, missed=3),
    Case("stale parts on active order", "on_hold", "parts_used", ENGINEER_ON_A,
         ReasonCode.APPLIED, missed=2),
    # Up-to-date proposals.
    Case("work start on new order", "new", "work_started", ADMIN, ReasonCode.INVALID_TRANSITION),
    Case("close of in-progress order", "in_progress", "closed", MANAGER, ReasonCode.INVALID_TRANSITION),
    Case("field work on cancelled order", "cancelled_on_hold", "time_logged", ENGINEER_ON_A,
         ReasonCode.INVALID_TRANSITION),
    Case("up-to-date parts on closed order", "closed", "parts_used", ENGINEER_ON_A,
         ReasonCode.INVALID_TRANSITION),
    Case("dispatcher cancels in progress", "in_progress", "cancelled", DISPATCHER, ReasonCode.ROLE_NOT_ALLOWED),
    Case("manager cancels in progress", "in_progress", "cancelled", MANAGER, ReasonCode.APPLIED),
    Case("dispatcher cancels on site", "on_site", "cancelled", DISPATCHER, ReasonCode.APPLIED),
    Case("dispatcher reopens order", "closed", "reopened", DISPATCHER, ReasonCode.ROLE_NOT_ALLOWED),
    Case("engineer creates order", "absent", "created", ENGINEER_ON_A, ReasonCode.ROLE_NOT_ALLOWED),
    Case("dispatcher accepts order", "assigned", "accepted", DISPATCHER, ReasonCode.ROLE_NOT_ALLOWED),
    Case("engineer note on new order", "new", "note_added", ENGINEER_ON_A, ReasonCode.ROLE_NOT_ALLOWED),
    Case("other engineer accepts", "assigned", "accepted", ENGINEER_ON_B, ReasonCode.ENGINEER_NOT_ASSIGNED),
    Case("other engineer logs time", "in_progress", "time_logged", ENGINEER_ON_B,
         ReasonCode.ENGINEER_NOT_ASSIGNED),
    Case("engineer without id accepts", "assigned", "accepted", make_actor(Role.ENGINEER),
         ReasonCode.ENGINEER_NOT_ASSIGNED),
    Case("admin accepts for engineer", "assigned", "accepted", ADMIN, ReasonCode.APPLIED),
    Case("assignee accepts", "assigned", "accepted", ENGINEER_ON_A, ReasonCode.APPLIED),
    Case("dispatcher creates order", "absent", "created", DISPATCHER, ReasonCode.APPLIED),
    # Malformed or misplaced proposals.
    Case("unknown event type", "in_progress", UNKNOWN_TYPE, ADMIN, ReasonCode.UNKNOWN_EVENT_TYPE),
    Case("unknown type on absent order", "absent", UNKNOWN_TYPE, ADMIN, ReasonCode.UNKNOWN_EVENT_TYPE),
    Case("engineer id of wrong type", "new", "assigned", DISPATCHER, ReasonCode.INVALID_PAYLOAD,
         payload={"engineer_id": 5}),
    Case("unknown payload field", "new", "assigned", DISPATCHER, ReasonCode.INVALID_PAYLOAD,
         payload=invalid_payload("assigned")),
    Case("bad payload on absent order", "absent", "assigned", DISPATCHER, ReasonCode.INVALID_PAYLOAD,
         payload={}),
    Case("assign unknown order", "absent", "assigned", DISPATCHER, ReasonCode.UNKNOWN_WORK_ORDER),
    Case("second creation", "new", "created", DISPATCHER, ReasonCode.WORK_ORDER_EXISTS),
    Case("base version ahead", "in_progress", "time_logged", ENGINEER_ON_A, ReasonCode.BASE_VERSION_AHEAD,
         base_version=7),
    Case("creation with base ahead", "absent", "created", DISPATCHER, ReasonCode.BASE_VERSION_AHEAD,
         base_version=1),
    Case("follows rejected event", "in_progress", "time_logged", ENGINEER_ON_A, ReasonCode.CAUSATION_REJECTED,
         causation=DecisionStatus.REJECTED),
    Case("follows event in review", "in_progress", "time_logged", ENGINEER_ON_A, ReasonCode.CAUSATION_IN_REVIEW,
         causation=DecisionStatus.NEEDS_REVIEW),
    Case("follows accepted event", "in_progress", "time_logged", ENGINEER_ON_A, ReasonCode.APPLIED,
         causation=DecisionStatus.ACCEPTED),
]


CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "two hand-written cases share a name"


def _base_version(case: Case) -> int:
    if case.base_version is not None:
        return case.base_version
    return len(SCENARIOS[case.scenario]) - case.missed


def _decide_case(case: Case) -> Arbitration:
    proposal = make_proposal(case.event_type, _base_version(case), case.payload)
    causation = (case.causation, CAUSATION_ID) if case.causation else None
    return decide(STATES[case.scenario], proposal, case.actor, EFFECTIVE_TIME, causation)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_decide_named_case(case: Case) -> None:
    outcome = _decide_case(case)

    assert outcome.reason_code is case.expected
    assert outcome.status is REASON_STATUS[case.expected]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_named_case_matches_policy(case: Case) -> None:
    payload_is_valid = case.payload is None  # every explicit payload in CASES is invalid

    code = expected_reason(
        SCENARIOS[case.scenario], case.event_type, payload_is_valid, case.actor, _base_version(case), case.causation
    )

    assert code is case.expected


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_named_case_message_filled(case: Case) -> None:
    outcome = _decide_case(case)

    assert outcome.message
    assert "{" not in outcome.message
    assert "}" not in outcome.message


def test_review_status_values() -> None:
    cancelled = _decide_case(CASES_BY_NAME["time on cancelled order"])
    reassigned = _decide_case(CASES_BY_NAME["arrival after reassignment"])
    closed = _decide_case(CASES_BY_NAME["parts on closed order"])

    assert cancelled.status is DecisionStatus.NEEDS_REVIEW
    assert reassigned.status is DecisionStatus.NEEDS_REVIEW
    assert closed.status is DecisionStatus.NEEDS_REVIEW


def test_review_keeps_state_unchanged() -> None:
    case = CASES_BY_NAME["time on cancelled order"]
    outcome = _decide_case(case)

    assert outcome.state == STATES[case.scenario]
    assert outcome.payload is None


def test_accepted_carries_payload() -> None:
    outcome = decide(STATES["in_progress"], make_proposal("time_logged", 6), ENGINEER_ON_A, EFFECTIVE_TIME)

    assert outcome.payload is not None
    assert outcome.payload.minutes == 45
    assert outcome.state is not None
    assert outcome.state.updated_at == EFFECTIVE_TIME


def test_absent_order_rejection_keeps_none() -> None:
    outcome = decide(None, make_proposal("assigned", 0), DISPATCHER, EFFECTIVE_TIME)

    assert outcome.reason_code is ReasonCode.UNKNOWN_WORK_ORDER
    assert outcome.state is None


def test_invalid_payload_names_field_path() -> None:
    proposal = make_proposal("assigned", 1, {"engineer_id": 5})

    outcome = decide(STATES["new"], proposal, DISPATCHER, EFFECTIVE_TIME)

    assert outcome.reason_code is ReasonCode.INVALID_PAYLOAD
    assert "`$.payload.engineer_id`" in outcome.message


def test_missing_field_names_payload_path() -> None:
    proposal = make_proposal("assigned", 1, {})

    outcome = decide(STATES["new"], proposal, DISPATCHER, EFFECTIVE_TIME)

    assert outcome.reason_code is ReasonCode.INVALID_PAYLOAD
    assert "`engineer_id`" in outcome.message
    assert "`$.payload`" in outcome.message


def test_unknown_field_names_payload_path() -> None:
    proposal = make_proposal("accepted", 2, {"engineer": "eng-a"})

    outcome = decide(STATES["assigned"], proposal, ENGINEER_ON_A, EFFECTIVE_TIME)

    assert outcome.reason_code is ReasonCode.INVALID_PAYLOAD
    assert "`engineer`" in outcome.message
    assert "`$.payload`" in outcome.message


def test_reassigned_message_names_assignee() -> None:
    outcome = _decide_case(CASES_BY_NAME["arrival after reassignment"])

    assert ENGINEER_A in outcome.message
    assert ENGINEER_B not in outcome.message


def test_causation_message_names_event() -> None:
    case = next(case for case in CASES if case.expected is ReasonCode.CAUSATION_REJECTED)

    outcome = _decide_case(case)

    assert CAUSATION_ID in outcome.message


# --- Reason codes ---------------------------------------------------------------

# The server, not `decide`, returns this code: it compares content fingerprints
# of two proposals with one client_event_id (see the fingerprint tests below).
SERVER_DECIDED_CODES = {ReasonCode.IDEMPOTENCY_KEY_REUSED}
# Codes that need the held event a review_resolved names; tests/test_review_decide.py passes one.
REVIEW_CODES = {ReasonCode.REVIEW_NOT_FOUND, ReasonCode.REVIEW_ALREADY_RESOLVED}


def test_cases_cover_every_reason_code() -> None:
    covered = {case.expected for case in CASES} | SERVER_DECIDED_CODES | REVIEW_CODES

    assert set(ReasonCode) - covered == set()


def test_table_reaches_decide_reason_codes() -> None:
    reached = set()
    for param in TABLE_CASES:
        scenario, base_version, event_type = param.values
        for actor in ACTORS.values():
            reached.add(expected_reason(SCENARIOS[scenario], event_type, True, actor, base_version))

    not_reached = set(ReasonCode) - reached
    assert not_reached == {
        ReasonCode.INVALID_PAYLOAD,
        ReasonCode.BASE_VERSION_AHEAD,
        ReasonCode.CAUSATION_REJECTED,
        ReasonCode.CAUSATION_IN_REVIEW,
        ReasonCode.IDEMPOTENCY_KEY_REUSED,
        ReasonCode.REVIEW_ALREADY_RESOLVED,
    }


@pytest.mark.parametrize("code", list(ReasonCode), ids=[code.value for code in ReasonCode])
def test_reason_status_value(code: ReasonCode) -> None:
    assert REASON_STATUS[code] is expected_status(code)


@pytest.mark.parametrize("code", list(ReasonCode), ids=[code.value for code in ReasonCode])
def test_reason_sentence_renders(code: ReasonCode) -> None:
    sentence = REASON_SENTENCES[code]
    placeholders = {name for _, name, _, _ in string.Formatter().parse(sentence) if name}

    rendered = sentence.format(
        type="arrived", state="new", version=3, base_version=2, role="engineer", engineer="eng-a", detail="x"
    )

    assert placeholders <= {"type", "state", "version", "base_version", "role", "engineer", "detail"}
    assert rendered.endswith(".")


# --- Effective time ---------------------------------------------------------------

TOLERANCE = dt.timedelta(minutes=2)
RECORDED_AT = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.timezone.utc)


def test_clamp_device_clock_ahead() -> None:
    occurred_at = RECORDED_AT + dt.timedelta(minutes=30)

    result = clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE)

    assert result == RECORDED_AT + TOLERANCE


def test_clamp_ahead_within_tolerance() -> None:
    occurred_at = RECORDED_AT + dt.timedelta(minutes=1)

    result = clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE)

    assert result == occurred_at


def test_clamp_past_time_kept() -> None:
    occurred_at = RECORDED_AT - dt.timedelta(hours=5)

    result = clamp_effective_time(occurred_at, RECORDED_AT, RECORDED_AT - dt.timedelta(hours=6), TOLERANCE)

    assert result == occurred_at


def test_clamp_before_previous_raised() -> None:
    previous = RECORDED_AT - dt.timedelta(hours=1)
    occurred_at = RECORDED_AT - dt.timedelta(hours=3)

    result = clamp_effective_time(occurred_at, RECORDED_AT, previous, TOLERANCE)

    assert result == previous


def test_clamp_previous_beats_ceiling() -> None:
    # The stream's times never go backwards, even past the skew ceiling.
    previous = RECORDED_AT + dt.timedelta(minutes=10)
    occurred_at = RECORDED_AT + dt.timedelta(minutes=30)

    result = clamp_effective_time(occurred_at, RECORDED_AT, previous, TOLERANCE)

    assert result == previous


def test_clamp_result_in_utc() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    occurred_at = dt.datetime(2024, 3, 4, 13, 0, tzinfo=berlin)

    result = clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE)

    assert result == occurred_at
    assert result.tzinfo is dt.timezone.utc
    assert result.hour == 11


def test_clamp_raised_result_in_utc() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    previous = dt.datetime(2024, 3, 4, 20, 0, tzinfo=tokyo)
    occurred_at = RECORDED_AT - dt.timedelta(hours=2)

    result = clamp_effective_time(occurred_at, RECORDED_AT, previous, TOLERANCE)

    assert result == previous
    assert result.tzinfo is dt.timezone.utc


def test_clamp_ceiling_across_offsets() -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    occurred_at = dt.datetime(2024, 3, 4, 8, 0, tzinfo=new_york)

    result = clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE)

    assert result == RECORDED_AT + TOLERANCE
    assert result.tzinfo is dt.timezone.utc


# --- Content fingerprint ------------------------------------------------------------

EVENT_ID = uuid.UUID("0b6f1d8e-7a52-4c1b-9d8e-3f2a1c0b9e77")


def test_fingerprint_ignores_key_order() -> None:
    first = make_proposal("parts_used", 6, {"part_number": "FAN-120", "quantity": 2, "description": "fan"},
                          client_event_id=EVENT_ID)
    second = make_proposal("parts_used", 6, {"description": "fan", "quantity": 2, "part_number": "FAN-120"},
                           client_event_id=EVENT_ID)

    assert content_fingerprint(first) == content_fingerprint(second)


def test_fingerprint_ignores_nested_key_order() -> None:
    first = make_proposal(UNKNOWN_TYPE, 6, {"where": {"x": 1, "y": 2}}, client_event_id=EVENT_ID)
    second = make_proposal(UNKNOWN_TYPE, 6, {"where": {"y": 2, "x": 1}}, client_event_id=EVENT_ID)

    assert content_fingerprint(first) == content_fingerprint(second)


def test_fingerprint_ignores_correlation_id() -> None:
    first = make_proposal("time_logged", 6, client_event_id=EVENT_ID, correlation_id="req-1")
    retry = make_proposal("time_logged", 6, client_event_id=EVENT_ID, correlation_id="req-2")
    without = make_proposal("time_logged", 6, client_event_id=EVENT_ID)

    assert content_fingerprint(first) == content_fingerprint(retry)
    assert content_fingerprint(first) == content_fingerprint(without)


def test_fingerprint_differs_by_payload() -> None:
    first = make_proposal("time_logged", 6, {"minutes": 45}, client_event_id=EVENT_ID)
    second = make_proposal("time_logged", 6, {"minutes": 50}, client_event_id=EVENT_ID)

    assert content_fingerprint(first) != content_fingerprint(second)


def test_fingerprint_differs_by_envelope() -> None:
    original = make_proposal("time_logged", 6, client_event_id=EVENT_ID)
    other_base = make_proposal("time_logged", 5, client_event_id=EVENT_ID)
    other_type = make_proposal("note_added", 6, {"minutes": 45}, client_event_id=EVENT_ID)
    other_cause = make_proposal("time_logged", 6, client_event_id=EVENT_ID, causation_id=uuid.uuid4())

    assert content_fingerprint(original) != content_fingerprint(other_base)
    assert content_fingerprint(original) != content_fingerprint(other_type)
    assert content_fingerprint(original) != content_fingerprint(other_cause)


def test_reused_key_fingerprint_differs() -> None:
    # Same client_event_id with new content: the server rejects it with IDEMPOTENCY_KEY_REUSED.
    original = make_proposal("parts_used", 6, {"part_number": "FAN-120", "quantity": 1}, client_event_id=EVENT_ID)
    reused = make_proposal("parts_used", 6, {"part_number": "FAN-120", "quantity": 3}, client_event_id=EVENT_ID)

    assert content_fingerprint(original) != content_fingerprint(reused)
    assert REASON_STATUS[ReasonCode.IDEMPOTENCY_KEY_REUSED] is DecisionStatus.REJECTED


def test_fingerprint_is_bytes() -> None:
    fingerprint = content_fingerprint(make_proposal("time_logged", 6, client_event_id=EVENT_ID))

    assert isinstance(fingerprint, bytes)
    assert str(EVENT_ID).encode() in fingerprint


def test_clamp_time_before_year_one() -> None:
    occurred_at = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))
    previous = RECORDED_AT - dt.timedelta(hours=1)

    assert clamp_effective_time(occurred_at, RECORDED_AT, previous, TOLERANCE) == previous
    assert clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE).year == 1


def test_clamp_time_after_year_9999() -> None:
    occurred_at = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-14)))

    result = clamp_effective_time(occurred_at, RECORDED_AT, None, TOLERANCE)

    assert result == RECORDED_AT + TOLERANCE
