"""POST /v1/events over loopback: lifecycle, idempotency, arbitration and the batch limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from api_helpers import (
    Clients,
    all_changes,
    assigned,
    create_assigned,
    created,
    event,
    post_batch,
    timeline,
    work_order,
)
from conftest import LiveServer, start_server, stop_server

from server.security import mint_dev_token
from server.config import Settings
from shared_schema import Role

LIFECYCLE = [
    ("accepted", "accepted"),
    ("travel_started", "en_route"),
    ("arrived", "on_site"),
    ("work_started", "in_progress"),
    ("completed", "completed"),
]


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


def engineer_steps(work_order_id: str, first_base_version: int = 2) -> list[dict]:
    """Build the engineer's part of the lifecycle, each event based on the version before it."""
    steps = []
    for offset, (event_type, _) in enumerate(LIFECYCLE):
        payload = {"summary": "Replaced spindle bearing", "fixed": True} if event_type == "completed" else {}
        steps.append(event(work_order_id, event_type, first_base_version + offset, payload))
    return steps


def test_lifecycle_every_step_accepted(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")

    office = post_batch(dispatcher, [created("wo-1", priority="P1"), assigned("wo-1", "e-17")])
    field = post_batch(engineer, engineer_steps("wo-1"))

    expected_statuses = ["new", "assigned", *[status for _, status in LIFECYCLE]]
    for index, decision in enumerate([*office, *field]):
        assert decision["status"] == "ACCEPTED", decision
        assert decision["reason_code"] == "applied"
        assert decision["replay"] is False
        assert uuid.UUID(decision["event_id"])
        assert decision["stream_version"] == index + 1
        assert decision["global_position"] == index + 1
        assert decision["work_order_version"] == index + 1
        assert decision["work_order_status"] == expected_statuses[index]

    state = work_order(dispatcher, "wo-1")
    assert state["status"] == "completed"
    assert state["version"] == 7
    assert state["engineer_id"] == "e-17"
    assert state["priority"] == "P1"
    assert state["visit_count"] == 1


def test_lifecycle_events_carry_actor_from_token(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    post_batch(dispatcher, [created("wo-1"), assigned("wo-1", "e-17")])
    post_batch(engineer, engineer_steps("wo-1"))

    events = all_changes(dispatcher)

    assert [(e["actor"], e["actor_role"]) for e in events[:2]] == [("d-1", "dispatcher")] * 2
    assert [(e["actor"], e["actor_role"]) for e in events[2:]] == [("e-17", "engineer")] * 5
    assert [e["type"] for e in events] == ["created", "assigned", *[t for t, _ in LIFECYCLE]]


def test_replayed_batch_returns_same_decisions(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    post_batch(dispatcher, [created("wo-1"), assigned("wo-1", "e-17")])
    batch = engineer_steps("wo-1")
    first = post_batch(engineer, batch)
    events_before = all_changes(dispatcher)
    timeline_before = timeline(dispatcher, "wo-1")

    again = post_batch(engineer, batch)

    assert [d["replay"] for d in again] == [True] * len(batch)
    assert [{**d, "replay": False} for d in again] == first
    assert all_changes(dispatcher) == events_before
    assert timeline(dispatcher, "wo-1") == timeline_before
    assert work_order(dispatcher, "wo-1")["version"] == 7


def test_replay_ignores_new_correlation_id(api):
    dispatcher = api("dispatcher", "d-1")
    proposal = created("wo-1")
    first = post_batch(dispatcher, [proposal])

    again = post_batch(dispatcher, [{**proposal, "correlation_id": "retry-2"}])

    assert again[0]["replay"] is True
    assert again[0]["event_id"] == first[0]["event_id"]
    assert len(all_changes(dispatcher)) == 1


def test_correlation_header_stored_on_events(api):
    dispatcher = api("dispatcher", "d-1")
    own = {**created("wo-2"), "correlation_id": "ticket-77"}

    response = dispatcher.post(
        "/v1/events", json={"events": [created("wo-1"), own]}, headers={"X-Correlation-ID": "sync-run-5"}
    )
    generated = dispatcher.post("/v1/events", json={"events": [created("wo-3")]})

    events = all_changes(dispatcher)
    assert response.headers["x-correlation-id"] == "sync-run-5"
    assert [e["correlation_id"] for e in events[:2]] == ["sync-run-5", "ticket-77"]
    assert events[2]["correlation_id"] == generated.headers["x-correlation-id"]
    assert uuid.UUID(events[2]["correlation_id"])


def test_reused_id_new_content_rejected(api):
    dispatcher = api("dispatcher", "d-1")
    proposal = created("wo-1", title="Spindle alarm 2041")
    first = post_batch(dispatcher, [proposal])

    reused = post_batch(dispatcher, [{**proposal, "payload": {**proposal["payload"], "title": "Coolant leak"}}])

    decision = reused[0]
    assert decision["status"] == "REJECTED"
    assert decision["reason_code"] == "idempotency_key_reused"
    assert decision["event_id"] is None
    assert decision["replay"] is False
    assert decision["work_order_status"] == "new"
    assert decision["work_order_version"] == 1
    assert work_order(dispatcher, "wo-1")["title"] == "Spindle alarm 2041"
    assert len(all_changes(dispatcher)) == 1
    assert len(timeline(dispatcher, "wo-1")) == 1
    assert post_batch(dispatcher, [proposal])[0] == {**first[0], "replay": True}


def test_reused_id_inside_one_batch(api):
    dispatcher = api("dispatcher", "d-1")
    proposal = created("wo-1")
    different = {**proposal, "payload": {**proposal["payload"], "title": "Other"}}

    decisions = post_batch(dispatcher, [proposal, proposal, different])

    assert decisions[0]["status"] == "ACCEPTED"
    assert decisions[1]["replay"] is True
    assert decisions[1]["event_id"] == decisions[0]["event_id"]
    assert decisions[2]["reason_code"] == "idempotency_key_reused"
    assert len(all_changes(dispatcher)) == 1


def test_idempotency_scoped_per_subject(api):
    first_dispatcher = api("dispatcher", "d-1")
    second_dispatcher = api("dispatcher", "d-2")
    third_dispatcher = api("dispatcher", "d-3")
    proposal = created("wo-1")
    post_batch(first_dispatcher, [proposal])

    same_body = post_batch(second_dispatcher, [proposal])[0]
    other_order = post_batch(third_dispatcher, [{**created("wo-2"), "client_event_id": proposal["client_event_id"]}])[0]

    assert same_body["status"] == "REJECTED"
    assert same_body["reason_code"] == "work_order_exists"
    assert same_body["replay"] is False
    assert other_order["status"] == "ACCEPTED"
    assert other_order["work_order_id"] == "wo-2"
    assert other_order["replay"] is False
    assert post_batch(second_dispatcher, [proposal])[0]["replay"] is True
    assert [e["work_order_id"] for e in all_changes(first_dispatcher)] == ["wo-1", "wo-2"]


def test_invalid_transition_mid_batch(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")

    decisions = post_batch(
        engineer,
        [
            event("wo-1", "accepted", 2),
            event("wo-1", "arrived", 3),
            event("wo-1", "travel_started", 3),
            event("wo-1", "arrived", 4),
            event("wo-1", "completed", 5),
        ],
    )

    assert [d["status"] for d in decisions] == ["ACCEPTED", "REJECTED", "ACCEPTED", "ACCEPTED", "REJECTED"]
    illegal = decisions[1]
    assert illegal["reason_code"] == "invalid_transition"
    assert illegal["work_order_status"] == "accepted"
    assert illegal["work_order_version"] == 3
    assert "while the order is accepted" in illegal["message"]
    assert illegal["event_id"] is None
    assert illegal["stream_version"] is None
    assert illegal["global_position"] is None
    assert decisions[3]["work_order_status"] == "on_site"
    assert decisions[4]["reason_code"] == "invalid_transition"
    assert decisions[4]["work_order_status"] == "on_site"
    assert work_order(dispatcher, "wo-1")["version"] == 5


def test_rejections_by_role_and_assignee(api):
    dispatcher = api("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    assignee = api("engineer", "e-17")
    other_engineer = api("engineer", "e-21")

    by_engineer = post_batch(assignee, [created("wo-2")])[0]
    by_other = post_batch(other_engineer, [event("wo-1", "accepted", 2)])[0]
    by_office = post_batch(dispatcher, [event("wo-1", "accepted", 2)])[0]
    unknown = post_batch(dispatcher, [event("wo-9", "assigned", 1, {"engineer_id": "e-17"})])[0]

    assert by_engineer["reason_code"] == "role_not_allowed"
    assert by_other["reason_code"] == "engineer_not_assigned"
    assert "e-17" in by_other["message"]
    assert by_office["reason_code"] == "role_not_allowed"
    assert unknown["reason_code"] == "unknown_work_order"
    assert unknown["work_order_status"] is None
    assert [d["status"] for d in (by_engineer, by_other, by_office, unknown)] == ["REJECTED"] * 4


def test_payload_problems_rejected_per_event(api):
    dispatcher = api("dispatcher", "d-1")

    decisions = post_batch(
        dispatcher,
        [
            event("wo-1", "exploded", 0),
            event("wo-1", "created", 0, {"title": "t"}),
            created("wo-1"),
            event("wo-1", "assigned", 5, {"engineer_id": "e-17"}),
        ],
    )

    assert [d["reason_code"] for d in decisions] == [
        "unknown_event_type",
        "invalid_payload",
        "applied",
        "base_version_ahead",
    ]
    assert "site_id" in decisions[1]["message"]


def test_field_work_after_cancel_needs_review(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    accept = post_batch(engineer, [event("wo-1", "accepted", 2)])[0]
    assert accept["work_order_version"] == 3
    cancel = post_batch(dispatcher, [event("wo-1", "cancelled", 3, {"reason": "Customer fixed it"})])[0]
    assert cancel["work_order_status"] == "cancelled"

    travel = event("wo-1", "travel_started", 3)
    arrive = event("wo-1", "arrived", 3, causation_id=travel["client_event_id"])
    decisions = post_batch(engineer, [travel, arrive])

    assert [d["status"] for d in decisions] == ["NEEDS_REVIEW", "NEEDS_REVIEW"]
    assert decisions[0]["reason_code"] == "work_on_cancelled_order"
    assert decisions[1]["reason_code"] == "causation_in_review"
    assert decisions[0]["work_order_status"] == "cancelled"
    assert decisions[0]["work_order_version"] == 4
    assert decisions[0]["event_id"] is None
    state = work_order(dispatcher, "wo-1")
    assert state["status"] == "cancelled"
    assert state["version"] == 4
    assert [e["type"] for e in all_changes(dispatcher)] == ["created", "assigned", "accepted", "cancelled"]

    entries = timeline(dispatcher, "wo-1")
    review = [(e["type"], e["status"], e["reason_code"]) for e in entries[4:]]
    assert review == [
        ("travel_started", "NEEDS_REVIEW", "work_on_cancelled_order"),
        ("arrived", "NEEDS_REVIEW", "causation_in_review"),
    ]
    assert entries[4]["event_id"] is None
    assert entries[4]["stream_version"] is None
    assert entries[4]["actor"] == "e-17"
    assert entries[4]["device_id"] == "tablet-1"


def test_field_work_after_reassign_needs_review(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(engineer, [event("wo-1", "accepted", 2)])
    post_batch(dispatcher, [event("wo-1", "reassigned", 3, {"engineer_id": "e-21", "reason": "closer"})])

    decision = post_batch(engineer, [event("wo-1", "travel_started", 3)])[0]

    assert decision["status"] == "NEEDS_REVIEW"
    assert decision["reason_code"] == "work_on_reassigned_order"
    assert "e-21" in decision["message"]
    assert decision["work_order_status"] == "assigned"
    state = work_order(dispatcher, "wo-1")
    assert state["engineer_id"] == "e-21"
    assert state["version"] == 4
    last = timeline(dispatcher, "wo-1")[-1]
    assert last["status"] == "NEEDS_REVIEW"
    assert last["reason_code"] == "work_on_reassigned_order"


def test_stale_decline_after_reassign_rejected(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(dispatcher, [event("wo-1", "reassigned", 2, {"engineer_id": "e-21"})])

    decision = post_batch(engineer, [event("wo-1", "declined", 2, {"reason": "Too far"})])[0]

    assert decision["status"] == "REJECTED"
    assert decision["reason_code"] == "reassigned_meanwhile"
    assert work_order(dispatcher, "wo-1")["engineer_id"] == "e-21"


def test_causation_on_rejected_event(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    bad = event("wo-1", "arrived", 2)
    follower = event("wo-1", "accepted", 2, causation_id=bad["client_event_id"])

    same_batch = post_batch(engineer, [bad, follower])
    later = post_batch(engineer, [event("wo-1", "accepted", 2, causation_id=bad["client_event_id"])])[0]

    assert same_batch[0]["reason_code"] == "invalid_transition"
    assert same_batch[1]["status"] == "REJECTED"
    assert same_batch[1]["reason_code"] == "causation_rejected"
    assert bad["client_event_id"] in same_batch[1]["message"]
    assert later["reason_code"] == "causation_rejected"
    assert work_order(dispatcher, "wo-1")["status"] == "assigned"


def test_causation_on_accepted_event(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    accept = event("wo-1", "accepted", 2)

    travel = event("wo-1", "travel_started", 3, causation_id=accept["client_event_id"])

    decisions = post_batch(engineer, [accept, travel])

    assert [d["status"] for d in decisions] == ["ACCEPTED", "ACCEPTED"]
    assert all_changes(dispatcher)[-1]["causation_id"] == accept["client_event_id"]


def test_batch_over_configured_limit(tmp_path):
    settings = Settings(var_dir=tmp_path / "var", max_batch_events=3)
    server, thread, base_url = start_server(settings)
    token = mint_dev_token(settings, subject="d-1", role=Role.DISPATCHER)
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            too_many = client.post("/v1/events", json={"events": [created(f"wo-{i}") for i in range(4)]})
            at_limit = client.post("/v1/events", json={"events": [created(f"wo-{i}") for i in range(3)]})
            feed = client.get("/v1/sync/changes").json()["events"]
    finally:
        stop_server(server, thread)

    body = too_many.json()
    assert too_many.status_code == 413
    assert body["error"] == "payload_too_large"
    assert body["field"] == "$.events"
    assert body["value"] == 4
    assert body["limit"] == 3
    assert "limit of 3" in body["message"]
    assert at_limit.status_code == 200
    assert [e["work_order_id"] for e in feed] == ["wo-0", "wo-1", "wo-2"]


def test_batch_over_limit_with_invalid_event(tmp_path):
    settings = Settings(var_dir=tmp_path / "var", max_batch_events=2)
    server, thread, base_url = start_server(settings)
    token = mint_dev_token(settings, subject="d-1", role=Role.DISPATCHER)
    events = [created("wo-1"), created("wo-2"), {**created("wo-3"), "base_version": "three"}]
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            response = client.post("/v1/events", json={"events": events})
    finally:
        stop_server(server, thread)

    assert response.status_code == 413
    assert response.json()["limit"] == 2


def test_default_batch_limit_is_500(api):
    dispatcher = api("dispatcher", "d-1")

    too_many = dispatcher.post("/v1/events", json={"events": [created(f"wo-{i:03}") for i in range(501)]})
    at_limit = dispatcher.post("/v1/events", json={"events": [created(f"wo-{i:03}") for i in range(500)]})

    assert too_many.status_code == 413
    assert too_many.json()["error"] == "payload_too_large"
    assert too_many.json()["limit"] == 500
    assert too_many.json()["value"] == 501
    assert at_limit.status_code == 200
    assert {d["status"] for d in at_limit.json()["decisions"]} == {"ACCEPTED"}


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_office_roles_create_orders(api, role):
    client = api(role, f"{role}-1")

    decision = post_batch(client, [created("wo-1")])[0]

    assert decision["status"] == "ACCEPTED"
