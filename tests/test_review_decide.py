"""`decide` on `review_resolved` proposals, with the held event the server would find."""

from __future__ import annotations

import datetime as dt

import pytest
from schema_helpers import (
    ACTORS,
    DISPATCHER,
    ENGINEER_ON_A,
    SCENARIOS,
    T0,
    WORK_ORDER_ID,
    fold_history,
    make_proposal,
    valid_payload,
)

from shared_schema import DecisionStatus, HeldReview, ReasonCode, Role, decide
from shared_schema.payloads import ReviewResolution

EFFECTIVE_TIME = T0 + dt.timedelta(hours=1)
WAITING = HeldReview(work_order_id=WORK_ORDER_ID, status=DecisionStatus.NEEDS_REVIEW)
EXISTING = [name for name in SCENARIOS if name != "absent"]


def resolve(scenario: str, review: HeldReview | None, *, actor=DISPATCHER, base_version: int | None = None):
    state = fold_history(SCENARIOS[scenario])
    assert state is not None
    version = state.version if base_version is None else base_version
    return state, decide(state, make_proposal("review_resolved", version), actor, EFFECTIVE_TIME, review=review)


@pytest.mark.parametrize("scenario", EXISTING)
def test_resolution_keeps_status_in_every_state(scenario):
    state, outcome = resolve(scenario, WAITING)

    assert (outcome.status, outcome.reason_code) == (DecisionStatus.ACCEPTED, ReasonCode.APPLIED)
    assert outcome.state is not None
    assert outcome.state.status is state.status
    assert outcome.state.engineer_id == state.engineer_id
    assert outcome.state.version == state.version + 1


@pytest.mark.parametrize("scenario", ["cancelled_accepted", "closed", "assigned_after_reassign"])
def test_stale_resolution_is_applied(scenario):
    _, outcome = resolve(scenario, WAITING, base_version=1)

    assert outcome.reason_code is ReasonCode.APPLIED


@pytest.mark.parametrize("actor_label", sorted(ACTORS))
def test_resolution_roles(actor_label):
    actor = ACTORS[actor_label]

    _, outcome = resolve("in_progress", WAITING, actor=actor)

    # Only the office roles resolve reviews; engineers and the server's own system role may not.
    expected = ReasonCode.APPLIED if actor.role in (Role.DISPATCHER, Role.MANAGER, Role.ADMIN) else ReasonCode.ROLE_NOT_ALLOWED
    assert outcome.reason_code is expected


@pytest.mark.parametrize(
    "review",
    [
        None,
        HeldReview(work_order_id="wo-other", status=DecisionStatus.NEEDS_REVIEW),
        HeldReview(work_order_id=WORK_ORDER_ID, status=DecisionStatus.ACCEPTED),
        HeldReview(work_order_id=WORK_ORDER_ID, status=DecisionStatus.REJECTED),
    ],
    ids=["missing", "other-order", "accepted-decision", "rejected-decision"],
)
def test_review_not_found(review):
    state, outcome = resolve("closed", review)

    assert (outcome.status, outcome.reason_code) == (DecisionStatus.REJECTED, ReasonCode.REVIEW_NOT_FOUND)
    assert outcome.state == state
    assert valid_payload("review_resolved")["client_event_id"] in outcome.message
    assert "'e-17'" in outcome.message


@pytest.mark.parametrize("resolution", list(ReviewResolution))
def test_review_already_resolved(resolution):
    resolved = HeldReview(work_order_id=WORK_ORDER_ID, status=DecisionStatus.NEEDS_REVIEW, resolution=resolution)

    state, outcome = resolve("on_hold", resolved)

    assert (outcome.status, outcome.reason_code) == (DecisionStatus.REJECTED, ReasonCode.REVIEW_ALREADY_RESOLVED)
    assert outcome.state == state
    assert f"resolved as {resolution.value}" in outcome.message


def test_engineer_gets_role_reason_first():
    _, outcome = resolve("in_progress", None, actor=ENGINEER_ON_A)

    assert outcome.reason_code is ReasonCode.ROLE_NOT_ALLOWED
