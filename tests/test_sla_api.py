"""SLA endpoints over HTTP: exact due instants, pauses, late events, at-risk list, access and bad input."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator

import pytest
from api_helpers import Clients, event, post_batch
from schema_helpers import valid_payload
from sla_helpers import BERLIN_OFFICE, ROUND_THE_CLOCK, at, history, iso_utc, put_contracts, sla

from shared_schema import Role

UTC = dt.timezone.utc


@pytest.fixture
def clients(live_server) -> Iterator[Clients]:
    put_contracts(
        live_server.settings,
        {"ct-office": BERLIN_OFFICE, "ct-24x7": ROUND_THE_CLOCK},
    )
    pool = Clients(live_server)
    yield pool
    pool.close()


def office_day(hold_reason: str) -> list[tuple[str, str, dict]]:
    """The worked example of docs/sla.md: created Friday 15:00 CEST, completed Monday 15:00 CEST."""
    return [
        ("created", at("2024-06-14 13:00"), {}),
        ("assigned", at("2024-06-14 13:00"), {"engineer_id": "e-1"}),
        ("accepted", at("2024-06-14 13:05"), {}),
        ("travel_started", at("2024-06-17 07:00"), {}),
        ("arrived", at("2024-06-17 07:30"), {}),
        ("work_started", at("2024-06-17 07:40"), {}),
        ("hold_started", at("2024-06-17 09:00"), {"reason": hold_reason}),
        ("work_resumed", at("2024-06-17 10:00"), {}),
        ("completed", at("2024-06-17 13:00"), {"summary": "replaced bearing"}),
    ]


def crossings(clock: dict) -> list[tuple[str, str]]:
    return [(item["key"], item["crossed_at"]) for item in clock["crossings"]]


def test_business_hours_due_instants(clients):
    admin = clients(Role.ADMIN, "admin-1")
    history(admin, "wo-office", office_day("customer"), contract_id="ct-office")

    view = sla(admin, "wo-office")

    assert view["no_sla_reason"] is None
    assert view["policies"][0]["calendar"]["time_zone"] == "Europe/Berlin"
    [cycle] = view["cycles"]
    assert cycle["priority"] == "P1"
    response, resolution = cycle["response"], cycle["resolution"]
    assert response["due_at"] == "2024-06-17T08:00:00Z"
    assert response["state"] == "met"
    assert crossings(response) == [
        ("1/response/warning/0.5", "2024-06-14T15:00:00Z"),
        ("1/response/warning/0.75", "2024-06-17T07:00:00Z"),
    ]
    assert resolution["due_at"] == "2024-06-17T13:00:00Z"
    assert resolution["state"] == "met"
    assert resolution["business_elapsed"] == "PT28800S"
    assert resolution["business_paused"] == "PT3600S"
    assert crossings(resolution) == [
        ("1/resolution/warning/0.5", "2024-06-17T08:00:00Z"),
        ("1/resolution/warning/0.75", "2024-06-17T11:00:00Z"),
    ]


def test_hold_for_parts_does_not_pause(clients):
    admin = clients(Role.ADMIN, "admin-1")
    history(admin, "wo-parts", office_day("parts"), contract_id="ct-office")

    resolution = sla(admin, "wo-parts")["cycles"][0]["resolution"]

    assert resolution["due_at"] == "2024-06-17T12:00:00Z"
    assert resolution["state"] == "breached"
    assert resolution["business_paused"] == "P0D"
    assert crossings(resolution)[-1] == ("1/resolution/breach/1.0", "2024-06-17T12:00:00Z")


def test_round_the_clock_due_instants(clients):
    admin = clients(Role.ADMIN, "admin-1")
    # Berlin's spring-forward night does not matter on a 24x7 calendar.
    history(admin, "wo-247", [("created", at("2024-03-30 22:00"), {})], contract_id="ct-24x7")

    cycle = sla(admin, "wo-247")["cycles"][0]

    assert cycle["response"]["due_at"] == "2024-03-31T02:00:00Z"
    assert cycle["resolution"]["due_at"] == "2024-03-31T06:00:00Z"
    assert cycle["response"]["state"] == "breached"
    assert crossings(cycle["response"]) == [
        ("1/response/warning/0.5", "2024-03-31T00:00:00Z"),
        ("1/response/warning/0.75", "2024-03-31T01:00:00Z"),
        ("1/response/breach/1.0", "2024-03-31T02:00:00Z"),
    ]


def test_late_events_recompute_the_past(clients):
    admin = clients(Role.ADMIN, "admin-1")
    now = dt.datetime.now(UTC)
    created_at = now - dt.timedelta(hours=3, minutes=10)
    history(
        admin,
        "wo-late",
        [
            ("created", created_at.isoformat(), {}),
            ("assigned", created_at.isoformat(), {"engineer_id": "e-1"}),
            ("accepted", (now - dt.timedelta(hours=3)).isoformat(), {}),
            ("travel_started", (now - dt.timedelta(hours=2, minutes=50)).isoformat(), {}),
        ],
        contract_id="ct-24x7",
    )
    before = sla(admin, "wo-late")["cycles"][0]
    assert before["response"]["state"] == "at_risk"
    assert [key for key, _ in crossings(before["response"])] == ["1/response/warning/0.5", "1/response/warning/0.75"]

    # The tablet was offline: the arrival an hour ago and a customer hold 40
    # minutes ago reach the server only now.
    history(
        admin,
        "wo-late",
        [
            ("arrived", (now - dt.timedelta(hours=1)).isoformat(), {}),
            ("work_started", (now - dt.timedelta(minutes=50)).isoformat(), {}),
            ("hold_started", (now - dt.timedelta(minutes=40)).isoformat(), {"reason": "customer"}),
        ],
        contract_id=None,
        first_version=4,
    )
    after = sla(admin, "wo-late")["cycles"][0]

    assert after["response"]["state"] == "met"
    assert iso_utc(after["response"]["stopped_at"]) == now - dt.timedelta(hours=1)
    assert [key for key, _ in crossings(after["response"])] == ["1/response/warning/0.5"]
    assert after["resolution"]["state"] == "paused"
    assert after["resolution"]["due_at"] is None
    assert crossings(after["resolution"]) == []


def test_order_without_usable_policy(clients):
    admin = clients(Role.ADMIN, "admin-1")
    history(admin, "wo-none", [("created", at("2024-06-14 13:00"), {})], contract_id=None)
    history(admin, "wo-unknown", [("created", at("2024-06-14 13:00"), {})], contract_id="ct-missing")
    # A contract with an invalid policy cannot be stored: the catalog command checks the policy.
    none, unknown = (sla(admin, order) for order in ("wo-none", "wo-unknown"))

    assert (none["no_sla_reason"], none["cycles"], none["policies"]) == ("the order has no contract", [], [])
    assert unknown["no_sla_reason"] == "contract 'ct-missing' is not in the contracts catalog"
    assert unknown["cycles"] == []


def test_at_risk_list_by_due_instant(clients):
    admin = clients(Role.ADMIN, "admin-1")
    now = dt.datetime.now(UTC)
    for order, hours_ago, contract in (
        ("wo-a", 3, "ct-24x7"),
        ("wo-b", 5, "ct-24x7"),
        ("wo-c", 5, None),
        ("wo-d", 1, "ct-24x7"),
    ):
        start = (now - dt.timedelta(hours=hours_ago)).isoformat()
        history(admin, order, [("created", start, {}), ("assigned", start, {"engineer_id": "e-1"})], contract_id=contract)
    dispatcher = clients(Role.DISPATCHER, "dispatcher-1")

    first = dispatcher.get("/v1/sla/at-risk", params={"limit": 2})
    assert first.status_code == 200, first.text
    second = dispatcher.get("/v1/sla/at-risk", params={"limit": 2, "cursor": first.json()["next_cursor"]})
    assert second.status_code == 200, second.text

    rows = [(item["work_order_id"], item["clock"], item["state"]) for item in first.json()["items"] + second.json()["items"]]
    assert rows == [
        ("wo-b", "response", "breached"),
        ("wo-a", "response", "at_risk"),
        ("wo-b", "resolution", "at_risk"),
    ]
    assert second.json()["next_cursor"] is None
    due = [iso_utc(item["due_at"]) for item in first.json()["items"] + second.json()["items"]]
    assert due == sorted(due)


def test_engineer_scope_on_sla_view(clients):
    admin = clients(Role.ADMIN, "admin-1")
    history(admin, "wo-e1", office_day("customer")[:2], contract_id="ct-office")
    own = clients(Role.ENGINEER, "e-1")
    other = clients(Role.ENGINEER, "e-2")

    assert own.get("/v1/work-orders/wo-e1/sla").status_code == 200
    for client, order in ((other, "wo-e1"), (other, "wo-missing")):
        response = client.get(f"/v1/work-orders/{order}/sla")
        assert response.status_code == 403
        assert response.json()["reason"] == "not_assigned"
    assert own.get("/v1/sla/at-risk").json()["reason"] == "role_not_permitted"
    for role in (Role.DISPATCHER, Role.MANAGER, Role.ADMIN):
        response = clients(role, f"{role.value}-1").get("/v1/work-orders/wo-missing/sla")
        assert response.status_code == 404
        assert (response.json()["field"], response.json()["value"]) == ("work_order_id", "wo-missing")


@pytest.mark.parametrize(
    ("path", "params", "field", "value"),
    [
        ("/v1/sla/at-risk", {"limit": "0"}, "limit", 0),
        ("/v1/sla/at-risk", {"limit": "ten"}, "limit", "ten"),
        ("/v1/sla/at-risk", {"limit": "1001"}, "limit", 1001),
        ("/v1/sla/at-risk", {"cursor": "not a cursor"}, "cursor", "not a cursor"),
        ("/v1/sla/at-risk", {"cursor": base64.urlsafe_b64encode(b"x").decode().rstrip("=")}, "cursor", "eA"),
        ("/v1/sla/at-risk", {"status": "open"}, "status", "open"),
        ("/v1/work-orders/wo-x/sla", {"at": "2024-01-01"}, "at", "2024-01-01"),
    ],
)
def test_bad_query_parameters(clients, path, params, field, value):
    response = clients(Role.MANAGER, "manager-1").get(path, params=params)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["value"] == value


def test_system_role_token_is_rejected(clients):
    system = clients(Role.SYSTEM, "csdp-sla-clock")

    for method, path, body in (
        ("GET", "/v1/work-orders", None),
        ("GET", "/v1/sla/at-risk", None),
        ("POST", "/v1/events", {"events": [event("wo-1", "sla_warning", 1, valid_payload("sla_warning"))]}),
    ):
        response = system.request(method, path, json=body)
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "unknown_role"


@pytest.mark.parametrize("role", [Role.ENGINEER, Role.DISPATCHER, Role.MANAGER, Role.ADMIN])
@pytest.mark.parametrize("event_type", ["sla_warning", "sla_breached"])
def test_no_token_records_sla_events(clients, role, event_type):
    admin = clients(Role.ADMIN, "admin-1")
    history(admin, f"wo-{role.value}-{event_type}", office_day("customer")[:2], contract_id="ct-office")
    client = clients(role, "e-1" if role is Role.ENGINEER else f"{role.value}-1")

    [decision] = post_batch(client, [event(f"wo-{role.value}-{event_type}", event_type, 2, valid_payload(event_type))])

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "role_not_allowed")
