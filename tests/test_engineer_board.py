"""GET /v1/engineers/board on both stores: one engineer in each status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from catalog_helpers import command, engineer, post_catalog
from api_helpers import Clients, event, post_batch
from conftest import LiveServer

from server.sla.calendar import business_calendar

import msgspec

# Status each order's events lead to, for the engineer assigned to it.
PATHS = {
    "en_route": ["accepted", "travel_started"],
    "on_site": ["accepted", "travel_started", "arrived"],
    "working": ["accepted", "travel_started", "arrived", "work_started"],
    "on_hold": ["accepted", "travel_started", "arrived", "work_started", "hold_started"],
}
PAYLOADS = {"hold_started": {"reason": "parts"}}


def order_events(order_id: str, engineer_id: str, steps: list[str], planned_start: str | None = None) -> list[dict[str, Any]]:
    created_payload = {"title": "Coolant leak", "site_id": "site-1", "priority": "P2"}
    assignment: dict[str, Any] = {"engineer_id": engineer_id}
    if planned_start:
        assignment["planned_start"] = planned_start
    bodies = [event(order_id, "created", 0, created_payload), event(order_id, "assigned", 1, assignment)]
    for version, step in enumerate(steps, start=2):
        bodies.append(event(order_id, step, version, PAYLOADS.get(step, {})))
    return bodies


# Every day from midnight to midnight: always on shift, whatever the time the test runs.
ALWAYS_ON_SHIFT = {"type": "business", "time_zone": "UTC", "weekly_hours": [[{"start": "00:00:00", "end": "00:00:00"}]] * 7}


def add_engineers(live: LiveServer, names: dict[str, str]) -> None:
    """Register engineers through the catalog command, each always on shift."""
    with Clients(live)("admin", "catalog-admin") as admin:
        commands = [engineer(engineer_id, name=name, calendar=ALWAYS_ON_SHIFT) for engineer_id, name in names.items()]
        post_catalog(admin, commands)


def test_board_shows_each_status(live_server: LiveServer) -> None:
    clients = Clients(live_server)
    admin = clients("admin", "admin-1")
    try:
        add_engineers(live_server, {"e-free": "Ada"})
        for status, steps in PATHS.items():
            decisions = post_batch(admin, order_events(f"wo-{status}", f"e-{status}", steps))
            assert {decision["status"] for decision in decisions} == {"ACCEPTED"}
        post_batch(admin, order_events("wo-plan-b", "e-free", [], "2030-01-02T08:00:00Z"))
        post_batch(admin, order_events("wo-plan-a", "e-free", ["accepted"], "2030-01-01T08:00:00Z"))
        post_batch(admin, order_events("wo-plan-c", "e-free", []))

        response = clients("dispatcher", "d-1").get("/v1/engineers/board")
        assert response.status_code == 200, response.text
        board = {entry["engineer_id"]: entry for entry in response.json()}
    finally:
        clients.close()

    assert sorted(board) == ["e-en_route", "e-free", "e-on_hold", "e-on_site", "e-working"]
    for status in PATHS:
        entry = board[f"e-{status}"]
        assert entry["status"] == status
        assert entry["current_order"]["work_order_id"] == f"wo-{status}"
        assert entry["in_catalog"] is False
        assert entry["last_update"] is not None
    free = board["e-free"]
    assert free["status"] == "available"
    assert free["name"] == "Ada"
    assert free["current_order"] is None
    assert [order["work_order_id"] for order in free["next_orders"]] == ["wo-plan-a", "wo-plan-b", "wo-plan-c"]
    assert free["has_calendar"] is True


@pytest.mark.parametrize(("role", "expected"), [("engineer", 403), ("dispatcher", 200), ("manager", 200), ("admin", 200)])
def test_board_roles(live_server: LiveServer, role: str, expected: int) -> None:
    clients = Clients(live_server)
    try:
        response = clients(role, "e-1" if role == "engineer" else f"{role}-1").get("/v1/engineers/board")
    finally:
        clients.close()
    assert response.status_code == expected, response.text


def test_board_unknown_parameter(live_server: LiveServer) -> None:
    clients = Clients(live_server)
    try:
        response = clients("manager", "m-1").get("/v1/engineers/board", params={"status": "working"})
    finally:
        clients.close()
    assert response.status_code == 422
    assert response.json()["field"] == "status"


def test_off_shift_from_calendar() -> None:
    from server.board.status import build_board

    closed_all_week_but_monday = business_calendar("Europe/Berlin", {0: [(dt.time(8), dt.time(16))]})
    calendar_json = msgspec.json.encode(closed_all_week_but_monday).decode()
    sunday_noon = dt.datetime(2030, 1, 6, 12, tzinfo=dt.timezone.utc)
    monday_noon = dt.datetime(2030, 1, 7, 11, tzinfo=dt.timezone.utc)
    catalog = [{"engineer_id": "e-1", "name": "Ada", "calendar": calendar_json}]

    assert build_board(catalog, [], [], {}, sunday_noon)[0].status == "off_shift"
    assert build_board(catalog, [], [], {}, monday_noon)[0].status == "available"
    assert build_board([{"engineer_id": "e-1", "name": "Ada"}], [], [], {}, sunday_noon)[0].status == "available"


def absence(engineer_id: str, start: dt.datetime, end: dt.datetime, reason: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
    if reason is not None:
        payload["reason"] = reason
    return command("engineer_absence_recorded", engineer_id, payload)


def test_absence_makes_off_shift(live_server: LiveServer) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    hour = dt.timedelta(hours=1)
    add_engineers(live_server, {"e-away": "Ada", "e-back": "Bo", "e-busy": "Cy", "e-quiet": "Di"})
    clients = Clients(live_server)
    try:
        admin = clients("admin", "catalog-admin")
        post_catalog(
            admin,
            [
                absence("e-away", now - hour, now + hour, "sick leave"),
                absence("e-back", now - 3 * hour, now - hour, "training"),
                absence("e-busy", now - hour, now + hour, "holiday"),
                absence("e-quiet", now - hour, now + hour, None),
            ],
        )
        post_batch(admin, order_events("wo-busy", "e-busy", PATHS["working"]))
        post_batch(admin, order_events("wo-away", "e-away", PATHS["on_hold"]))
        response = clients("dispatcher", "d-1").get("/v1/engineers/board")
    finally:
        clients.close()
    assert response.status_code == 200, response.text
    board = {entry["engineer_id"]: entry for entry in response.json()}

    away = board["e-away"]
    assert away["status"] == "off_shift"
    assert away["absence"]["reason"] == "sick leave"
    assert away["current_order"]["work_order_id"] == "wo-away"
    assert board["e-back"]["status"] == "available"
    assert board["e-back"]["absence"] is None
    # The calendar puts the engineer on shift, but the absence wins.
    assert board["e-quiet"]["status"] == "off_shift"
    assert board["e-quiet"]["has_calendar"] is True
    assert board["e-quiet"]["absence"]["reason"] is None
    # An order in progress keeps its status, and the absence is still shown.
    assert board["e-busy"]["status"] == "working"
    assert board["e-busy"]["absence"]["reason"] == "holiday"


def test_absence_bounds_are_half_open() -> None:
    from server.board.status import build_board

    start = dt.datetime(2030, 1, 7, 8, tzinfo=dt.timezone.utc)
    end = dt.datetime(2030, 1, 7, 12, tzinfo=dt.timezone.utc)
    row = {
        "engineer_id": "e-1",
        "name": "Ada",
        "absences": [{"start": start.isoformat(), "end": end.isoformat(), "reason": "doctor", "catalog_event_id": 1}],
    }

    assert build_board([row], [], [], {}, start - dt.timedelta(microseconds=1))[0].status == "available"
    assert build_board([row], [], [], {}, start)[0].status == "off_shift"
    assert build_board([row], [], [], {}, end - dt.timedelta(microseconds=1))[0].status == "off_shift"
    assert build_board([row], [], [], {}, end)[0].status == "available"
