"""The review queue over HTTP: held field work listed, resolved, and guarded, on both stores.

Every held event here is a real NEEDS_REVIEW decision: engineer e-17 accepts
an order, the tablet goes offline, a dispatcher reassigns (or cancels) the
order, and the tablet's field work arrives afterwards with the old
`base_version`.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from api_helpers import Clients, all_changes, create_assigned, event, post_batch, timeline, work_order
from click.testing import CliRunner

from server.cli import main
from server.kpi import compute_kpis
from server.sla import PriorityTargets, SlaEvent, SlaPolicy, TwentyFourSeven, evaluate_sla
from shared_schema import RecordedEvent
from shared_schema.payloads import Priority

DISPATCHER = ("dispatcher", "d-1")


@pytest.fixture
def api(live_server) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


def hold_travel_after_reassign(api: Clients, order: str) -> dict[str, Any]:
    """Produce a NEEDS_REVIEW `travel_started` of e-17 on `order`, reassigned to e-21 meanwhile, and return its body."""
    dispatcher = api(*DISPATCHER)
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, order, "e-17")
    assert post_batch(engineer, [event(order, "accepted", 2)])[0]["status"] == "ACCEPTED"
    reassign = event(order, "reassigned", 3, {"engineer_id": "e-21", "reason": "closer engineer"})
    assert post_batch(dispatcher, [reassign])[0]["status"] == "ACCEPTED"

    travel = event(order, "travel_started", 3)
    decision = post_batch(engineer, [travel])[0]
    assert (decision["status"], decision["reason_code"]) == ("NEEDS_REVIEW", "work_on_reassigned_order")
    return travel


def hold_work_after_cancel(api: Clients, order: str) -> dict[str, Any]:
    """Produce a NEEDS_REVIEW `time_logged` of e-17 on `order`, cancelled meanwhile, and return its body."""
    dispatcher = api(*DISPATCHER)
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, order, "e-17")
    assert post_batch(engineer, [event(order, "accepted", 2)])[0]["status"] == "ACCEPTED"
    assert post_batch(dispatcher, [event(order, "cancelled", 3, {"reason": "customer fixed it"})])[0]["status"] == "ACCEPTED"

    logged = event(order, "time_logged", 3, {"minutes": 90})
    decision = post_batch(engineer, [logged])[0]
    assert (decision["status"], decision["reason_code"]) == ("NEEDS_REVIEW", "work_on_cancelled_order")
    return logged


def resolution(
    order: str, held: dict[str, Any], outcome: str, base_version: int, *, subject: str = "e-17", note: str = "checked"
) -> dict[str, Any]:
    payload = {"client_event_id": held["client_event_id"], "subject": subject, "resolution": outcome, "note": note}
    return event(order, "review_resolved", base_version, payload)


def reviews(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/reviews", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def recorded_events(client: httpx.Client) -> list[RecordedEvent]:
    return [msgspec.convert(item, RecordedEvent) for item in all_changes(client)]


# -- the queue -------------------------------------------------------------------


def test_held_event_is_listed(api):
    held = hold_travel_after_reassign(api, "wo-1")

    page = reviews(api(*DISPATCHER))

    assert page["next_cursor"] is None
    assert len(page["items"]) == 1
    item = page["items"][0]
    assert item["work_order_id"] == "wo-1"
    assert item["reason_code"] == "work_on_reassigned_order"
    assert "e-21" in item["message"]
    assert item["work_order_status"] == "assigned"
    assert item["assignee"] == "e-21"
    assert dt.datetime.fromisoformat(item["decided_at"]).tzinfo is not None
    proposal = item["proposal"]
    assert proposal["client_event_id"] == held["client_event_id"]
    assert proposal["type"] == "travel_started"
    assert proposal["payload"] == {}
    assert dt.datetime.fromisoformat(proposal["occurred_at"]) == dt.datetime.fromisoformat(held["occurred_at"])
    assert proposal["base_version"] == 3
    assert proposal["device_id"] == "tablet-1"
    assert proposal["subject"] == "e-17"
    assert proposal["role"] == "engineer"


@pytest.mark.parametrize("outcome", ["accepted", "dismissed"])
def test_resolution_keeps_state(api, outcome):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    before = work_order(dispatcher, "wo-1")

    body = resolution("wo-1", held, outcome, 4, note="e-17 drove there before the reassignment reached the tablet")
    decision = post_batch(dispatcher, [body])[0]

    assert (decision["status"], decision["reason_code"]) == ("ACCEPTED", "applied")
    after = work_order(dispatcher, "wo-1")
    assert after["status"] == before["status"] == "assigned"
    assert after["engineer_id"] == before["engineer_id"] == "e-21"
    assert after["version"] == before["version"] + 1
    assert reviews(dispatcher)["items"] == []

    last = timeline(dispatcher, "wo-1")[-1]
    assert last["type"] == "review_resolved"
    assert last["status"] == "ACCEPTED"
    assert last["actor"] == "d-1"
    assert last["payload"]["resolution"] == outcome
    assert last["payload"]["note"] == "e-17 drove there before the reassignment reached the tablet"
    assert last["payload"]["client_event_id"] == held["client_event_id"]
    held_entries = [entry for entry in timeline(dispatcher, "wo-1") if entry["client_event_id"] == held["client_event_id"]]
    assert [entry["status"] for entry in held_entries] == ["NEEDS_REVIEW"]


def test_resolution_on_cancelled_order(api):
    dispatcher = api(*DISPATCHER)
    held = hold_work_after_cancel(api, "wo-1")

    decision = post_batch(dispatcher, [resolution("wo-1", held, "accepted", 4, note="book the 90 minutes")])[0]

    assert (decision["status"], decision["reason_code"]) == ("ACCEPTED", "applied")
    assert decision["work_order_status"] == "cancelled"
    assert work_order(dispatcher, "wo-1")["status"] == "cancelled"
    assert reviews(dispatcher)["items"] == []


@pytest.mark.parametrize("outcome", ["accepted", "dismissed"])
def test_resolution_keeps_kpi_and_sla(api, outcome):
    """The KPI and SLA engines read status-changing events only, so a resolution leaves their figures as they were."""
    dispatcher = api(*DISPATCHER)
    engineer = api("engineer", "e-21")
    held = hold_travel_after_reassign(api, "wo-1")
    for version, event_type in enumerate(["accepted", "travel_started", "arrived", "work_started"], start=4):
        assert post_batch(engineer, [event("wo-1", event_type, version)])[0]["status"] == "ACCEPTED"
    before = recorded_events(dispatcher)

    decision = post_batch(dispatcher, [resolution("wo-1", held, outcome, 8)])[0]
    assert decision["status"] == "ACCEPTED"
    after = recorded_events(dispatcher)
    assert [item.type for item in after] == [item.type for item in before] + ["review_resolved"]

    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    window = {"window_start": now - dt.timedelta(days=1), "window_end": now + dt.timedelta(days=1)}
    for group_by in ("engineer", "day"):
        assert compute_kpis(after, group_by=group_by, **window) == compute_kpis(before, group_by=group_by, **window)
    targets = {priority: PriorityTargets(response=dt.timedelta(hours=4), resolution=dt.timedelta(hours=8)) for priority in Priority}
    policy = SlaPolicy(calendar=TwentyFourSeven(), targets=targets)
    sla_before = evaluate_sla([SlaEvent.from_recorded(item) for item in before], policy, now)
    sla_after = evaluate_sla([SlaEvent.from_recorded(item) for item in after], policy, now)
    assert sla_after == sla_before


def test_projections_verify_after_resolutions(api, live_server):
    dispatcher = api(*DISPATCHER)
    accepted = hold_travel_after_reassign(api, "wo-1")
    dismissed = hold_work_after_cancel(api, "wo-2")
    assert post_batch(dispatcher, [resolution("wo-1", accepted, "accepted", 4)])[0]["status"] == "ACCEPTED"
    assert post_batch(dispatcher, [resolution("wo-2", dismissed, "dismissed", 4)])[0]["status"] == "ACCEPTED"
    settings = live_server.settings
    env = {"CSDP_VAR_DIR": str(settings.var_dir), "CSDP_DATABASE_URL": settings.database_url or None}

    result = CliRunner().invoke(main, ["projections", "verify"], env=env, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    for projection in ("work_orders_current", "work_order_timeline", "event_audience"):
        assert f"{projection}: equal" in result.output


def test_resolution_replay_is_idempotent(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    body = resolution("wo-1", held, "accepted", 4)

    first = post_batch(dispatcher, [body])[0]
    again = post_batch(dispatcher, [body])[0]

    assert first["status"] == "ACCEPTED"
    assert again == {**first, "replay": True}
    assert work_order(dispatcher, "wo-1")["version"] == 5
    assert [entry["type"] for entry in timeline(dispatcher, "wo-1")].count("review_resolved") == 1


def test_second_resolution_is_rejected(api):
    dispatcher = api(*DISPATCHER)
    manager = api("manager", "m-1")
    held = hold_travel_after_reassign(api, "wo-1")
    assert post_batch(dispatcher, [resolution("wo-1", held, "dismissed", 4)])[0]["status"] == "ACCEPTED"

    decision = post_batch(manager, [resolution("wo-1", held, "accepted", 5)])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_already_resolved")
    assert "resolved as dismissed" in decision["message"]
    assert held["client_event_id"] in decision["message"]
    assert work_order(dispatcher, "wo-1")["version"] == 5


def test_two_resolutions_in_one_batch(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")

    decisions = post_batch(
        dispatcher, [resolution("wo-1", held, "accepted", 4), resolution("wo-1", held, "dismissed", 4)]
    )

    assert [(d["status"], d["reason_code"]) for d in decisions] == [
        ("ACCEPTED", "applied"),
        ("REJECTED", "review_already_resolved"),
    ]


# -- bad resolutions ---------------------------------------------------------------


def test_unknown_id_is_not_found(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    unknown = {**held, "client_event_id": str(uuid.uuid4())}

    decision = post_batch(dispatcher, [resolution("wo-1", unknown, "accepted", 4)])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_not_found")
    assert unknown["client_event_id"] in decision["message"]
    assert len(reviews(dispatcher)["items"]) == 1


def test_other_subject_is_not_found(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")

    decision = post_batch(dispatcher, [resolution("wo-1", held, "accepted", 4, subject="e-21")])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_not_found")


def test_wrong_order_is_not_found(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    create_assigned(dispatcher, "wo-2", "e-21")

    decision = post_batch(dispatcher, [resolution("wo-2", held, "accepted", 2)])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_not_found")
    assert len(reviews(dispatcher)["items"]) == 1


def test_accepted_event_is_not_a_review(api):
    dispatcher = api(*DISPATCHER)
    create_assigned(dispatcher, "wo-1", "e-17")
    accepted = event("wo-1", "accepted", 2)
    assert post_batch(api("engineer", "e-17"), [accepted])[0]["status"] == "ACCEPTED"

    decision = post_batch(dispatcher, [resolution("wo-1", accepted, "accepted", 3)])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_not_found")


def test_unknown_order_is_rejected(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")

    decision = post_batch(dispatcher, [resolution("wo-404", held, "accepted", 0)])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "unknown_work_order")


def test_engineer_may_not_resolve(api):
    held = hold_travel_after_reassign(api, "wo-1")

    for subject in ("e-17", "e-21"):
        decision = post_batch(api("engineer", subject), [resolution("wo-1", held, "accepted", 4)])[0]
        assert (decision["status"], decision["reason_code"]) == ("REJECTED", "role_not_allowed")
    assert len(reviews(api(*DISPATCHER))["items"]) == 1


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"resolution": "maybe"}, "$.payload.resolution"),
        ({"note": ""}, "$.payload.note"),
        ({"client_event_id": "not-a-uuid"}, "$.payload.client_event_id"),
        ({"subject": ""}, "$.payload.subject"),
        ({"extra": 1}, "extra"),
    ],
    ids=["resolution", "empty-note", "client-event-id", "empty-subject", "unknown-field"],
)
def test_invalid_payload_is_rejected(api, change, path):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    body = resolution("wo-1", held, "accepted", 4)
    body["payload"].update(change)

    decision = post_batch(dispatcher, [body])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "invalid_payload")
    assert path in decision["message"]


def test_missing_note_is_rejected(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    body = resolution("wo-1", held, "accepted", 4)
    del body["payload"]["note"]

    decision = post_batch(dispatcher, [body])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "invalid_payload")
    assert "note" in decision["message"]


def test_uppercase_id_names_the_held_event(api):
    dispatcher = api(*DISPATCHER)
    held = hold_travel_after_reassign(api, "wo-1")
    spelled = {**held, "client_event_id": held["client_event_id"].upper().replace("-", "")}

    assert post_batch(dispatcher, [resolution("wo-1", spelled, "accepted", 4)])[0]["status"] == "ACCEPTED"
    assert reviews(dispatcher)["items"] == []
    again = post_batch(dispatcher, [resolution("wo-1", held, "dismissed", 5)])[0]
    assert again["reason_code"] == "review_already_resolved"


# -- races -------------------------------------------------------------------------


def test_concurrent_resolutions_accept_one(api):
    """Two dispatchers resolve each review at the same moment: one resolution is accepted, the other rejected."""
    orders = [f"wo-{index}" for index in range(1, 5)]
    held = {order: hold_travel_after_reassign(api, order) for order in orders}
    first, second = api("dispatcher", "d-1"), api("dispatcher", "d-2")

    for order in orders:
        barrier = threading.Barrier(2)
        results: dict[str, dict[str, Any]] = {}

        def resolve(name: str, client: httpx.Client, outcome: str) -> None:
            body = resolution(order, held[order], outcome, 4)
            barrier.wait()
            results[name] = client.post("/v1/events", json={"events": [body]}).json()["decisions"][0]

        threads = [
            threading.Thread(target=resolve, args=("d-1", first, "accepted")),
            threading.Thread(target=resolve, args=("d-2", second, "dismissed")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        outcomes = sorted((d["status"], d["reason_code"]) for d in results.values())
        assert outcomes == [("ACCEPTED", "applied"), ("REJECTED", "review_already_resolved")], order
        resolved = [entry for entry in timeline(first, order) if entry["type"] == "review_resolved"]
        assert [entry["status"] for entry in resolved].count("ACCEPTED") == 1
    assert reviews(first)["items"] == []


# -- listing: filters, pages and bad parameters ---------------------------------------


def test_filters_select_reviews(api):
    dispatcher = api(*DISPATCHER)
    hold_travel_after_reassign(api, "wo-1")
    hold_work_after_cancel(api, "wo-2")

    assert [item["work_order_id"] for item in reviews(dispatcher)["items"]] == ["wo-1", "wo-2"]
    assert [item["work_order_id"] for item in reviews(dispatcher, work_order_id="wo-2")["items"]] == ["wo-2"]
    by_reason = reviews(dispatcher, reason_code="work_on_cancelled_order")["items"]
    assert [item["work_order_id"] for item in by_reason] == ["wo-2"]
    assert len(reviews(dispatcher, subject="e-17")["items"]) == 2
    assert reviews(dispatcher, subject="e-21")["items"] == []
    assert reviews(dispatcher, work_order_id="wo-9")["items"] == []


def test_pages_walk_oldest_first(api):
    dispatcher = api(*DISPATCHER)
    held = [hold_travel_after_reassign(api, f"wo-{index}") for index in range(1, 6)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = reviews(dispatcher, **params)
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(item["proposal"]["client_event_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [body["client_event_id"] for body in held]


def test_page_skips_resolved_reviews(api):
    dispatcher = api(*DISPATCHER)
    held = [hold_travel_after_reassign(api, f"wo-{index}") for index in range(1, 4)]
    assert post_batch(dispatcher, [resolution("wo-2", held[1], "dismissed", 4)])[0]["status"] == "ACCEPTED"

    first = reviews(dispatcher, limit=1)
    second = reviews(dispatcher, limit=1, cursor=first["next_cursor"])

    assert [item["work_order_id"] for item in first["items"]] == ["wo-1"]
    assert [item["work_order_id"] for item in second["items"]] == ["wo-3"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"limit": "0"}, "limit", 0),
        ({"limit": "1001"}, "limit", 1001),
        ({"limit": "ten"}, "limit", "ten"),
        ({"reason_code": "applied"}, "reason_code", "applied"),
        ({"reason_code": "WORK_ON_CLOSED_ORDER"}, "reason_code", "WORK_ON_CLOSED_ORDER"),
        ({"cursor": "not a cursor"}, "cursor", "not a cursor"),
        ({"cursor": "WzFd"}, "cursor", "WzFd"),
        ({"status": "NEEDS_REVIEW"}, "status", "NEEDS_REVIEW"),
        ({"subject": "e-17\x00"}, "subject", "e-17\x00"),
        ([("work_order_id", "wo-1"), ("work_order_id", "wo-2")], "work_order_id", ["wo-1", "wo-2"]),
    ],
    ids=[
        "limit-zero",
        "limit-too-large",
        "limit-text",
        "reason-not-review",
        "reason-upper-case",
        "cursor-garbage",
        "cursor-foreign",
        "unknown-parameter",
        "nul-character",
        "repeated-parameter",
    ],
)
def test_bad_query_is_422(api, params, field, value):
    response = api(*DISPATCHER).get("/v1/reviews", params=params)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field
    assert body["value"] == value
    assert field in body["message"]


# -- roles -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["engineer", "dispatcher", "manager", "admin"])
def test_queue_endpoint_roles(api, role):
    response = api(role, f"{role}-1").get("/v1/reviews")

    if role == "engineer":
        assert response.status_code == 403
        assert response.json()["reason"] == "role_not_permitted"
    else:
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("role", ["dispatcher", "manager", "admin"])
def test_office_roles_may_resolve(api, role):
    held = hold_travel_after_reassign(api, "wo-1")

    decision = post_batch(api(role, f"{role}-1"), [resolution("wo-1", held, "accepted", 4)])[0]

    assert (decision["status"], decision["reason_code"]) == ("ACCEPTED", "applied")
    assert reviews(api(*DISPATCHER))["items"] == []
