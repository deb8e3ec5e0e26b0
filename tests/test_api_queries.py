"""Query side over loopback: work-order lists, engineer scoping, the changes feed and timelines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_helpers import Clients, all_changes, assigned, create_assigned, created, event, post_batch, timeline
from conftest import LiveServer

# (work order, priority, engineer or None, engineer's events after assignment, cancelled)
FLEET = [
    ("wo-01", "P1", None, [], False),
    ("wo-02", "P2", "e-17", [], False),
    ("wo-03", "P1", "e-21", [], False),
    ("wo-04", "P3", "e-17", ["accepted"], False),
    ("wo-05", "P2", None, [], True),
    ("wo-06", "P1", "e-17", ["accepted", "travel_started"], False),
]


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


@pytest.fixture
def fleet(api: Clients) -> None:
    """Seed orders in several states, priorities and assignees."""
    dispatcher = api("dispatcher", "d-1")
    for work_order_id, priority, engineer_id, steps, cancelled in FLEET:
        batch = [created(work_order_id, priority=priority)]
        if engineer_id:
            batch.append(assigned(work_order_id, engineer_id))
        if cancelled:
            batch.append(event(work_order_id, "cancelled", len(batch), {"reason": "duplicate"}))
        post_batch(dispatcher, batch)
        if steps:
            engineer = api("engineer", engineer_id)
            decisions = post_batch(engineer, [event(work_order_id, step, 2 + i) for i, step in enumerate(steps)])
            assert {d["status"] for d in decisions} == {"ACCEPTED"}


def listed_ids(client, **params) -> list[str]:
    response = client.get("/v1/work-orders", params=params)
    assert response.status_code == 200, response.text
    return [item["work_order_id"] for item in response.json()["items"]]


def walk_pages(client, **params) -> tuple[list[str], int]:
    """Follow next_cursor to the last page, and return the ids in order and the number of pages."""
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params) if cursor is None else {**params, "cursor": cursor}
        response = client.get("/v1/work-orders", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        ids.extend(item["work_order_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


def test_list_filters_by_status(api, fleet):
    dispatcher = api("dispatcher", "d-1")

    assert listed_ids(dispatcher, status="assigned") == ["wo-02", "wo-03"]
    assert listed_ids(dispatcher, status="new") == ["wo-01"]
    assert listed_ids(dispatcher, status="cancelled") == ["wo-05"]
    assert listed_ids(dispatcher, status="en_route") == ["wo-06"]
    assert listed_ids(dispatcher, status="closed") == []


def test_list_filters_by_engineer_and_priority(api, fleet):
    dispatcher = api("dispatcher", "d-1")

    assert listed_ids(dispatcher, engineer_id="e-17") == ["wo-02", "wo-04", "wo-06"]
    assert listed_ids(dispatcher, priority="P1") == ["wo-01", "wo-03", "wo-06"]
    assert listed_ids(dispatcher, priority="P1", engineer_id="e-17") == ["wo-06"]
    assert listed_ids(dispatcher, status="assigned", priority="P2") == ["wo-02"]
    assert listed_ids(dispatcher) == [work_order_id for work_order_id, *_ in FLEET]


def test_pagination_walks_all_pages(api):
    dispatcher = api("dispatcher", "d-1")
    expected = [f"wo-{i:02}" for i in range(25)]
    priorities = ["P1" if i % 3 == 0 else "P4" for i in range(len(expected))]
    post_batch(dispatcher, [created(work_order_id, priority=p) for work_order_id, p in zip(expected, priorities)])

    ids, pages = walk_pages(dispatcher, limit=4)
    p1_ids, p1_pages = walk_pages(dispatcher, limit=2, priority="P1")

    assert ids == expected
    assert pages == 7
    assert p1_ids == expected[::3]
    assert p1_pages == 5


def test_pagination_exact_multiple_of_limit(api):
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created(f"wo-{i}") for i in range(6)])

    first = dispatcher.get("/v1/work-orders", params={"limit": 3}).json()
    second = dispatcher.get("/v1/work-orders", params={"limit": 3, "cursor": first["next_cursor"]}).json()

    assert len(first["items"]) == 3
    assert len(second["items"]) == 3
    assert second["next_cursor"] is None


def test_pagination_sees_orders_added_later(api):
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created(f"wo-{i}") for i in (1, 3, 5)])
    first = dispatcher.get("/v1/work-orders", params={"limit": 2}).json()
    post_batch(dispatcher, [created("wo-0"), created("wo-4")])

    rest = dispatcher.get("/v1/work-orders", params={"limit": 10, "cursor": first["next_cursor"]}).json()

    assert [item["work_order_id"] for item in first["items"]] == ["wo-1", "wo-3"]
    assert [item["work_order_id"] for item in rest["items"]] == ["wo-4", "wo-5"]


def test_engineer_lists_only_own_orders(api, fleet):
    engineer = api("engineer", "e-17")

    own = listed_ids(engineer)
    own_en_route = listed_ids(engineer, status="en_route")
    foreign = engineer.get("/v1/work-orders", params={"engineer_id": "e-21"})

    assert own == ["wo-02", "wo-04", "wo-06"]
    assert own_en_route == ["wo-06"]
    assert listed_ids(engineer, engineer_id="e-17") == own
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "forbidden"
    assert foreign.json()["field"] == "engineer_id"
    assert foreign.json()["value"] == "e-21"


def test_engineer_get_foreign_order_403(api, fleet):
    engineer = api("engineer", "e-17")

    own = engineer.get("/v1/work-orders/wo-02")
    foreign = engineer.get("/v1/work-orders/wo-03")
    unassigned = engineer.get("/v1/work-orders/wo-01")
    missing = engineer.get("/v1/work-orders/wo-99")

    assert own.status_code == 200
    assert foreign.status_code == 403
    assert unassigned.status_code == 403
    # A missing order gets the same response, so an engineer cannot probe which ids exist.
    assert missing.status_code == 403
    assert missing.json()["message"] == "work order 'wo-99' is not assigned to engineer e-17"
    assert foreign.json()["error"] == "forbidden"
    assert foreign.json()["reason"] == "not_assigned"
    assert foreign.json()["field"] == "work_order_id"
    assert foreign.json()["value"] == "wo-03"
    assert foreign.json()["message"] == "work order 'wo-03' is not assigned to engineer e-17"


def test_engineer_timeline_foreign_order_403(api, fleet):
    engineer = api("engineer", "e-17")

    own = engineer.get("/v1/work-orders/wo-04/timeline")
    foreign = engineer.get("/v1/work-orders/wo-03/timeline")

    assert own.status_code == 200
    assert [entry["type"] for entry in own.json()] == ["created", "assigned", "accepted"]
    assert foreign.status_code == 403
    assert foreign.json()["reason"] == "not_assigned"
    assert foreign.json()["value"] == "wo-03"


def test_engineer_changes_scoped_to_assignments(api):
    dispatcher = api("dispatcher", "d-1")
    first = api("engineer", "e-17")
    second = api("engineer", "e-21")
    create_assigned(dispatcher, "wo-a", "e-17")
    create_assigned(dispatcher, "wo-b", "e-21")
    post_batch(first, [event("wo-a", "accepted", 2)])

    before = all_changes(first)
    post_batch(dispatcher, [event("wo-a", "reassigned", 3, {"engineer_id": "e-21"})])
    post_batch(second, [event("wo-a", "accepted", 4), event("wo-b", "accepted", 2)])
    after = all_changes(first)

    assert [(e["work_order_id"], e["type"]) for e in before] == [("wo-a", "assigned"), ("wo-a", "accepted")]
    assert [(e["work_order_id"], e["type"]) for e in after] == [
        ("wo-a", "assigned"),
        ("wo-a", "accepted"),
        ("wo-a", "reassigned"),
    ]
    assert [(e["work_order_id"], e["type"]) for e in all_changes(second)] == [
        ("wo-b", "assigned"),
        ("wo-a", "reassigned"),
        ("wo-a", "accepted"),
        ("wo-b", "accepted"),
    ]
    assert listed_ids(first) == []
    assert first.get("/v1/work-orders/wo-a").status_code == 403


def test_changes_revoke_reassigned_order(api):
    dispatcher = api("dispatcher", "d-1")
    first = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-a", "e-17")
    before = first.get("/v1/sync/changes", params={"since": 0}).json()
    post_batch(dispatcher, [event("wo-a", "reassigned", 2, {"engineer_id": "e-21"})])

    page = first.get("/v1/sync/changes", params={"since": before["next_cursor"]}).json()

    assert [e["type"] for e in page["events"]] == ["reassigned"]
    assert page["work_orders"] == []
    assert page["revoked"] == ["wo-a"]
    assert [state["work_order_id"] for state in before["work_orders"]] == ["wo-a"]
    assert before["revoked"] == []


def test_engineer_changes_page_snapshots(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-a", "e-17")
    create_assigned(dispatcher, "wo-b", "e-21")

    page = engineer.get("/v1/sync/changes").json()

    assert [state["work_order_id"] for state in page["work_orders"]] == ["wo-a"]
    assert page["work_orders"][0]["version"] == 2
    assert page["has_more"] is False


def test_changes_feed_in_global_order(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    create_assigned(dispatcher, "wo-2", "e-17")
    post_batch(engineer, [event("wo-2", "accepted", 2), event("wo-1", "accepted", 2)])
    post_batch(dispatcher, [created("wo-3"), event("wo-2", "priority_changed", 3, {"priority": "P1"})])

    events = all_changes(dispatcher)

    assert [e["global_position"] for e in events] == list(range(1, 9))
    assert [(e["work_order_id"], e["stream_version"]) for e in events] == [
        ("wo-1", 1),
        ("wo-1", 2),
        ("wo-2", 1),
        ("wo-2", 2),
        ("wo-2", 3),
        ("wo-1", 3),
        ("wo-3", 1),
        ("wo-2", 4),
    ]


def test_changes_cursor_resumes_without_gaps(api):
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created(f"wo-{i}") for i in range(7)])
    whole = all_changes(dispatcher)

    paged = all_changes(dispatcher, limit=3)
    first_page = dispatcher.get("/v1/sync/changes", params={"limit": 3}).json()
    post_batch(dispatcher, [created("wo-7"), created("wo-8")])
    resumed = all_changes(dispatcher, since=int(first_page["next_cursor"]), limit=2)

    assert paged == whole
    assert first_page["has_more"] is True
    assert first_page["next_cursor"] == "3"
    assert [e["global_position"] for e in resumed] == list(range(4, 10))
    assert [e["work_order_id"] for e in resumed] == [f"wo-{i}" for i in range(3, 9)]


def test_changes_cursor_at_end(api):
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created("wo-1")])

    page = dispatcher.get("/v1/sync/changes", params={"since": 1}).json()
    beyond = dispatcher.get("/v1/sync/changes", params={"since": 50})

    assert page["events"] == []
    assert page["next_cursor"] == "1"
    assert page["has_more"] is False
    # A cursor past the log's end comes from another copy of the store, so the client must reset.
    assert beyond.status_code == 409
    assert beyond.json()["reason"] == "reset_required"


def test_timeline_orders_and_marks_decisions(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(engineer, [event("wo-1", "arrived", 2), event("wo-1", "accepted", 2)])
    post_batch(dispatcher, [event("wo-1", "reassigned", 3, {"engineer_id": "e-21"})])
    post_batch(engineer, [event("wo-1", "travel_started", 3)])
    post_batch(dispatcher, [event("wo-1", "priority_changed", 4, {"priority": "P1"})])

    entries = timeline(dispatcher, "wo-1")

    assert [(e["type"], e["status"], e["reason_code"]) for e in entries] == [
        ("created", "ACCEPTED", "applied"),
        ("assigned", "ACCEPTED", "applied"),
        ("arrived", "REJECTED", "invalid_transition"),
        ("accepted", "ACCEPTED", "applied"),
        ("reassigned", "ACCEPTED", "applied"),
        ("travel_started", "NEEDS_REVIEW", "work_on_reassigned_order"),
        ("priority_changed", "ACCEPTED", "applied"),
    ]
    accepted = [e for e in entries if e["status"] == "ACCEPTED"]
    assert [e["stream_version"] for e in accepted] == [1, 2, 3, 4, 5]
    assert all(e["event_id"] for e in accepted)
    assert all(e["effective_time"] for e in accepted)
    not_applied = [e for e in entries if e["status"] != "ACCEPTED"]
    assert [e["event_id"] for e in not_applied] == [None, None]
    assert [e["global_position"] for e in not_applied] == [None, None]
    assert [e["effective_time"] for e in not_applied] == [None, None]
    assert "while the order is assigned" in entries[2]["message"]


def test_demo_server_lists_demo_orders(demo_server):
    clients = Clients(demo_server)
    try:
        all_orders = listed_ids(clients("dispatcher", "d-1"))
        new_orders = listed_ids(clients("dispatcher", "d-1"), status="new")
        own_orders = listed_ids(clients("engineer", "e-17"))
    finally:
        clients.close()

    assert all_orders == ["wo-1001", "wo-1002", "wo-1003"]
    assert new_orders == ["wo-1003"]
    assert own_orders == ["wo-1001"]
