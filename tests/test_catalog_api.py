"""Reference data through `POST /v1/catalog` and the catalog reads, on both stores."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import Clients, assigned, created, post_batch
from catalog_helpers import (
    asset,
    command,
    contract,
    engineer,
    items,
    policy,
    post_catalog,
    rejected,
    site,
    snapshot,
)
from conftest import LiveServer


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


def test_every_command_type_recorded(api):
    manager = api("manager", "mgr-1")
    commands = [
        site("site-a"),
        site("site-a", time_zone="Europe/Paris", verb="updated"),
        engineer("e-1", home_site_id="site-a"),
        engineer("e-1", verb="updated", name="Alex B."),
        command(
            "engineer_absence_recorded",
            "e-1",
            {"start": "2026-03-02T08:00:00+01:00", "end": "2026-03-06T17:00:00+01:00", "reason": "training"},
        ),
        asset("cnc-1"),
        asset("cnc-1", verb="updated"),
        snapshot("cnc-1", "2026-01-01T00:00:00Z", controller="Fanuc 31i", firmware="V4.2", spindle_hours=1200),
        contract("ct-1"),
        command("contract_updated", "ct-1", {"name": "Gold+", "policy": policy(effective_from="2026-06-01T00:00:00Z")}),
    ]

    recorded = post_catalog(manager, commands)

    assert [entry["type"] for entry in recorded] == [item["type"] for item in commands]
    assert [entry["entity_id"] for entry in recorded] == [item["entity_id"] for item in commands]
    assert [entry["entity"] for entry in recorded[:2]] == ["site", "site"]
    ids = [entry["id"] for entry in recorded]
    assert ids == list(range(ids[0], ids[0] + len(commands)))

    dispatcher = api("dispatcher", "disp-1")
    (site_document,) = items(dispatcher, "/v1/catalog/sites")
    assert site_document["time_zone"] == "Europe/Paris"
    assert site_document["version"] == 2
    (engineer_document,) = items(dispatcher, "/v1/catalog/engineers")
    assert engineer_document["name"] == "Alex B."
    assert engineer_document["home_site_id"] is None
    assert engineer_document["calendar"]["time_zone"] == "Europe/Berlin"
    assert engineer_document["absences"][0]["start"] == "2026-03-02T07:00:00Z"
    assert engineer_document["absences"][0]["reason"] == "training"
    (asset_document,) = items(dispatcher, "/v1/catalog/assets")
    assert asset_document["configurations"] == [
        {
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_to": None,
            "configuration": {"controller": "Fanuc 31i", "firmware": "V4.2", "spindle_hours": 1200},
        }
    ]
    (contract_document,) = items(dispatcher, "/v1/catalog/contracts")
    assert contract_document["name"] == "Gold+"
    assert [version.get("effective_from") for version in contract_document["policies"]] == [
        None,
        "2026-06-01T00:00:00Z",
    ]


def test_contract_policy_versions_select(api):
    from server.catalog.commands import build_policy
    from server.sla import select_policy
    import datetime as dt

    manager = api("admin", "adm-1")
    post_catalog(manager, [contract("ct-1", effective_from="2026-01-01T00:00:00Z")])
    later = policy(effective_from="2026-06-01T00:00:00Z", reopen="continue")
    post_catalog(manager, [command("contract_updated", "ct-1", {"name": "Gold", "policy": later})])

    (document,) = items(manager, "/v1/catalog/contracts")
    versions = [build_policy(version) for version in document["policies"]]

    assert select_policy(versions, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)).reopen.value == "new_cycle"
    assert select_policy(versions, dt.datetime(2026, 6, 1, tzinfo=dt.UTC)).reopen.value == "continue"


def test_list_pages_with_cursor(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site(f"site-{index:02d}") for index in range(5)])

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = manager.get("/v1/catalog/sites", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["site_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [f"site-{index:02d}" for index in range(5)]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"cursor": "!!"}, "cursor"), ({"limit": "0"}, "limit"), ({"sort": "name"}, "sort")],
)
def test_list_bad_query_rejected(api, query, field):
    response = api("manager", "mgr-1").get("/v1/catalog/assets", params=query)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def register_site_and_engineer(manager) -> None:
    post_catalog(manager, [site("site-a"), engineer("e-1"), asset("cnc-1")])


# (commands, field, value) where the last command of each list is at fault.
BAD_COMMANDS = [
    ([site("site-x", time_zone="Mars/Olympus")], "$.commands[0].payload.time_zone", "Mars/Olympus"),
    # A file in the zoneinfo folder whose meaning depends on the host, not an IANA name.
    ([site("site-x", time_zone="localtime")], "$.commands[0].payload.time_zone", "localtime"),
    ([site("site-x", time_zone="posixrules")], "$.commands[0].payload.time_zone", "posixrules"),
    (
        [contract("ct-2", targets={p: {"response": "P999999999D", "resolution": "PT1H"} for p in ("P1", "P2", "P3", "P4")})],
        "$.commands[0].payload.policy.targets.P1.response",
        "999999999 days, 0:00:00",
    ),
    ([snapshot("cnc-1", "2026-02-01T00:00:00Z", firmware="v\u0000x")], "$.commands[0].payload.configuration[...]", None),
    (
        [engineer("e-2", calendar={"type": "business", "time_zone": "Nowhere/City", "weekly_hours": []})],
        "$.commands[0].payload.calendar.time_zone",
        "Nowhere/City",
    ),
    (
        [command("engineer_absence_recorded", "e-1", {"start": "2026-03-02T08:00:00", "end": "2026-03-03T08:00:00Z"})],
        "$.commands[0].payload.start",
        "2026-03-02T08:00:00",
    ),
    (
        [command("engineer_absence_recorded", "e-1", {"start": "2026-03-03T08:00:00Z", "end": "2026-03-03T08:00:00Z"})],
        "$.commands[0].payload.end",
        "2026-03-03T08:00:00Z",
    ),
    (
        [command("engineer_absence_recorded", "e-1", {"start": "2026-03-04T08:00:00Z", "end": "2026-03-03T08:00:00Z"})],
        "$.commands[0].payload.end",
        "2026-03-03T08:00:00Z",
    ),
    (
        [snapshot("cnc-1", "2026-01-01T00:00:00Z", firmware="1"), snapshot("cnc-1", "2026-01-01T01:00:00+01:00", firmware="2")],
        "$.commands[1].payload.valid_from",
        "2026-01-01T00:00:00Z",
    ),
    ([snapshot("cnc-1", "2026-01-01T00:00:00", firmware="1")], "$.commands[0].payload.valid_from", "2026-01-01T00:00:00"),
    ([asset("cnc-9", site_id="site-missing")], "$.commands[0].payload.site_id", "site-missing"),
    ([engineer("e-3", home_site_id="site-missing")], "$.commands[0].payload.home_site_id", "site-missing"),
    ([site("site-a")], "$.commands[0].entity_id", "site-a"),
    ([site("site-new", verb="updated")], "$.commands[0].entity_id", "site-new"),
    ([asset("cnc-404", verb="updated")], "$.commands[0].entity_id", "cnc-404"),
    (
        [command("engineer_absence_recorded", "e-404", {"start": "2026-03-02T08:00:00Z", "end": "2026-03-03T08:00:00Z"})],
        "$.commands[0].entity_id",
        "e-404",
    ),
    ([{**site("site-y"), "actor": "someone"}], "$.commands[0].actor", "someone"),
    ([command("site_registered", "site-z", {"name": "Z", "time_zone": "UTC", "color": "red"})], "$.commands[0].payload.color", "red"),
    ([command("site_demolished", "site-a", {})], "$.commands[0].type", "site_demolished"),
    ([command("site_registered", "bad id", {"name": "Z", "time_zone": "UTC"})], "$.commands[0].entity_id", "bad id"),
    ([contract("ct-2", warning_thresholds=[0.8, 0.5])], "$.commands[0].payload.policy.warning_thresholds", "<list of 2 items>"),
    ([contract("ct-2", pausing_hold_reasons=["weather"])], "$.commands[0].payload.policy.pausing_hold_reasons[0]", "weather"),
    (
        [command("contract_registered", "ct-2", {"name": "Gold", "policy": {**policy(), "targets": {"P1": {"response": "PT1H", "resolution": "PT2H"}}}})],
        "$.commands[0].payload.policy.targets",
        "<dict of 1 items>",
    ),
    ([contract("ct-2", effective_from="2026-01-01T00:00:00")], "$.commands[0].payload.policy.effective_from", "2026-01-01T00:00:00"),
    (
        [snapshot("cnc-1", "2026-02-01T00:00:00Z", nested={"a": 1})],
        "$.commands[0].payload.configuration[...]",
        None,
    ),
]


@pytest.mark.parametrize(("commands", "field", "value"), BAD_COMMANDS)
def test_bad_command_rejected_with_field(api, commands, field, value):
    manager = api("manager", "mgr-1")
    register_site_and_engineer(manager)

    # A valid command first: the whole request must be rejected, and the path must count it.
    body = rejected(manager, {"commands": [site("site-before"), *commands]})

    shifted = re.sub(r"^\$\.commands\[(\d+)\]", lambda match: f"$.commands[{int(match.group(1)) + 1}]", field)
    assert body["field"] == shifted
    if value is not None:
        assert body["value"] == value
    assert [item["site_id"] for item in items(manager, "/v1/catalog/sites")] == ["site-a"]


def test_duplicate_policy_effective_from_rejected(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [contract("ct-1", effective_from="2026-01-01T00:00:00Z")])
    update = command("contract_updated", "ct-1", {"name": "Gold", "policy": policy(effective_from="2026-01-01T00:00:00Z")})

    body = rejected(manager, {"commands": [update]})

    assert body["field"] == "$.commands[0].payload.policy.effective_from"
    assert body["value"] == "2026-01-01T00:00:00Z"


def test_too_many_commands_rejected(api):
    manager = api("manager", "mgr-1")

    body = rejected(manager, {"commands": [site(f"site-{index}") for index in range(501)]})

    assert body["field"] == "$.commands"
    assert body["value"] == 501
    assert body["limit"] == 500


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (b'{"commands": []}', 422, "$.commands"),
        (b'{"commands": [{"type": "site_registered", "entity_id": "s", "payload": {"name": "S", "time_zone": "UTC"}}], "extra": 1}', 422, "$.extra"),
        (b"[]", 422, "$"),
    ],
)
def test_malformed_body_rejected(api, body, status, field):
    response = api("manager", "mgr-1").post("/v1/catalog", content=body, headers={"content-type": "application/json"})

    assert response.status_code == status, response.text
    assert response.json().get("field") == field


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("engineer", "POST", "/v1/catalog", 403),
        ("dispatcher", "POST", "/v1/catalog", 403),
        ("manager", "POST", "/v1/catalog", 200),
        ("admin", "POST", "/v1/catalog", 200),
        ("engineer", "GET", "/v1/catalog/engineers", 403),
        ("engineer", "GET", "/v1/catalog/sites", 403),
        ("engineer", "GET", "/v1/catalog/assets", 403),
        ("engineer", "GET", "/v1/catalog/contracts", 403),
        ("engineer", "GET", "/v1/catalog/assets/cnc-1/configuration", 403),
        ("dispatcher", "GET", "/v1/catalog/engineers", 200),
        ("dispatcher", "GET", "/v1/catalog/assets/cnc-1/configuration", 404),
        ("manager", "GET", "/v1/catalog/contracts", 200),
        ("admin", "GET", "/v1/catalog/sites", 200),
    ],
)
def test_catalog_roles(api, role, method, path, status):
    client = api(role, f"{role}-1")

    if method == "POST":
        response = client.post(path, json={"commands": [site(f"site-{role}")]})
    else:
        response = client.get(path)

    assert response.status_code == status, response.text


def test_catalog_requires_token(api):
    response = api.anonymous().get("/v1/catalog/sites")

    assert response.status_code == 401


SNAPSHOTS = [
    snapshot("cnc-1", "2026-01-01T00:00:00Z", firmware="1.0"),
    snapshot("cnc-1", "2026-03-01T00:00:00Z", firmware="2.0"),
]


@pytest.mark.parametrize(
    ("at", "firmware", "valid_to"),
    [
        ("2026-01-01T00:00:00Z", "1.0", "2026-03-01T00:00:00Z"),
        ("2026-02-28T23:59:59.999999Z", "1.0", "2026-03-01T00:00:00Z"),
        ("2026-03-01T00:00:00Z", "2.0", None),
        ("2026-03-01T01:00:00+01:00", "2.0", None),
        ("2030-01-01T00:00:00Z", "2.0", None),
    ],
)
def test_snapshot_selected_half_open(api, at, firmware, valid_to):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site("site-a"), asset("cnc-1"), *SNAPSHOTS])

    response = manager.get("/v1/catalog/assets/cnc-1/configuration", params={"at": at})

    assert response.status_code == 200, response.text
    assert response.json()["configuration"] == {"firmware": firmware}
    assert response.json()["valid_to"] == valid_to


def test_snapshot_before_first_is_404(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site("site-a"), asset("cnc-1"), *SNAPSHOTS])

    response = manager.get("/v1/catalog/assets/cnc-1/configuration", params={"at": "2025-12-31T23:59:59Z"})

    assert response.status_code == 404
    assert response.json()["field"] == "at"


def test_backdated_snapshot_splits_interval(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site("site-a"), asset("cnc-1"), *SNAPSHOTS])
    post_catalog(manager, [snapshot("cnc-1", "2026-02-01T00:00:00Z", firmware="1.5")])

    (document,) = items(manager, "/v1/catalog/assets")

    assert [(item["valid_from"][:10], (item["valid_to"] or "")[:10]) for item in document["configurations"]] == [
        ("2026-01-01", "2026-02-01"),
        ("2026-02-01", "2026-03-01"),
        ("2026-03-01", ""),
    ]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [({"at": "2026-01-01T00:00:00"}, 422, "at"), ({"at": "yesterday"}, 422, "at"), ({"when": "x"}, 422, "when")],
)
def test_configuration_bad_query_rejected(api, query, status, field):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site("site-a"), asset("cnc-1"), *SNAPSHOTS])

    response = manager.get("/v1/catalog/assets/cnc-1/configuration", params=query)

    assert response.status_code == status
    assert response.json()["field"] == field


def test_unknown_asset_configuration_404(api):
    response = api("manager", "mgr-1").get("/v1/catalog/assets/cnc-404/configuration")

    assert response.status_code == 404
    assert response.json()["value"] == "cnc-404"


def test_work_order_configuration_at_creation(api):
    manager = api("manager", "mgr-1")
    post_catalog(
        manager,
        [site("site-a"), asset("cnc-101"), snapshot("cnc-101", "2020-01-01T00:00:00Z", firmware="old")],
    )
    dispatcher = api("dispatcher", "disp-1")
    post_batch(dispatcher, [created("wo-1"), assigned("wo-1", "e-17")])
    # A snapshot recorded after the order was created does not change the response.
    post_catalog(manager, [snapshot("cnc-101", "2999-01-01T00:00:00Z", firmware="future")])

    response = dispatcher.get("/v1/work-orders/wo-1/asset-configuration")
    assert response.status_code == 200, response.text
    assert response.json()["configuration"] == {"firmware": "old"}
    assert response.json()["asset_id"] == "cnc-101"

    own = api.anonymous(headers={"Authorization": f"Bearer {api.live.token('engineer', 'eng-17', 'e-17')}"})
    assert own.get("/v1/work-orders/wo-1/asset-configuration").status_code == 200
    other = api.anonymous(headers={"Authorization": f"Bearer {api.live.token('engineer', 'eng-21', 'e-21')}"})
    denied = other.get("/v1/work-orders/wo-1/asset-configuration")
    assert denied.status_code == 403
    assert denied.json()["reason"] == "not_assigned"
    assert dispatcher.get("/v1/work-orders/wo-404/asset-configuration").status_code == 404


def test_work_order_without_snapshot_404(api):
    dispatcher = api("dispatcher", "disp-1")
    post_batch(dispatcher, [created("wo-1")])

    response = dispatcher.get("/v1/work-orders/wo-1/asset-configuration")

    assert response.status_code == 404
    assert response.json()["field"] == "asset_id"


def test_audit_lists_catalog_changes(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site("site-a"), asset("cnc-1")], **{"X-Correlation-Id": "corr-catalog-1", "X-Device-Id": "office-pc"})

    response = manager.get("/v1/audit", params={"correlation_id": "corr-catalog-1"})

    assert response.status_code == 200, response.text
    entries = response.json()["items"]
    assert [entry["kind"] for entry in entries] == ["catalog_change", "catalog_change"]
    assert [entry["event_type"] for entry in entries] == ["site_registered", "asset_registered"]
    assert [entry["entity_id"] for entry in entries] == ["site-a", "cnc-1"]
    first = entries[0]
    assert first["subject"] == "mgr-1"
    assert first["role"] == "manager"
    assert first["device_id"] == "office-pc"
    assert first["outcome"] == "ACCEPTED"
    assert first["reason"] == "applied"
    assert first["entity"] == "site"


def test_audit_pages_through_catalog_changes(api):
    manager = api("manager", "mgr-1")
    post_catalog(manager, [site(f"site-{index}") for index in range(3)])

    first = manager.get("/v1/audit", params={"limit": 2}).json()
    second = manager.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]})

    assert second.status_code == 200, second.text
    kinds = [entry["kind"] for entry in first["items"] + second.json()["items"]]
    assert kinds.count("catalog_change") == 3


def test_rejected_catalog_request_audited(api):
    manager = api("manager", "mgr-1")
    rejected(manager, {"commands": [site("site-x", time_zone="Mars/Olympus")]})

    deadline = time.monotonic() + 10
    while True:
        entries = manager.get("/v1/audit", params={"outcome": "DENIED"}).json()["items"]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    assert [entry["path"] for entry in entries] == ["/v1/catalog"]
    assert entries[0]["status_code"] == 422


def test_demo_loads_catalog(demo_server):
    clients = Clients(demo_server)
    try:
        manager = clients("manager", "mgr-1")
        assert [item["site_id"] for item in items(manager, "/v1/catalog/sites")] == ["site-lyon", "site-stuttgart"]
        assert len(items(manager, "/v1/catalog/engineers")) == 3
        assert len(items(manager, "/v1/catalog/contracts")) == 1
        response = manager.get("/v1/work-orders/wo-1001/asset-configuration")
        assert response.status_code == 200, response.text
        assert response.json()["asset_id"] == "cnc-101"
        audit = manager.get("/v1/audit", params={"subject": "demo-loader", "limit": 100}).json()["items"]
        assert sum(entry["kind"] == "catalog_change" for entry in audit) == 12
    finally:
        clients.close()


def test_engineer_with_round_the_clock_calendar(api):
    manager = api("manager", "mgr-1")

    post_catalog(manager, [engineer("e-24", calendar={"type": "24x7"})])
    listed = {item["engineer_id"]: item for item in items(manager, "/v1/catalog/engineers")}

    assert listed["e-24"]["calendar"] == {"type": "24x7"}
