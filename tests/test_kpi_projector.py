"""The KPI projector and GET /v1/kpi against the reference computation, on both stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from catalog_helpers import command, post_catalog, snapshot
from conftest import SHARED_SSL_CONTEXT, LiveServer, free_port
from simulators.kpi_reference import reference_kpis
from sla_helpers import ROUND_THE_CLOCK, at, history, put_contracts
from test_kpi_engine import HistoryGenerator, assert_same_figures, engine_figures

from server.app import create_app
from server.config import Settings
from server.kpi import KpiGroup
from shared_schema import RecordedEvent, Role

UTC = dt.timezone.utc
ORDERS = 1000
WINDOWS = [
    (dt.datetime(2023, 12, 1, tzinfo=UTC), dt.datetime(2024, 7, 1, tzinfo=UTC)),
    (dt.datetime(2024, 1, 17, 10, 30, tzinfo=UTC), dt.datetime(2024, 2, 24, 17, 15, 20, tzinfo=UTC)),
]


@contextmanager
def running_server(settings: Settings, *, kpi_projector: bool = True) -> Iterator[LiveServer]:
    port = free_port()
    app = create_app(settings, kpi_projector=kpi_projector)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the test server stopped while starting"
        assert time.monotonic() < deadline, "the test server did not start within 15 s"
        time.sleep(0.02)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def client(live: LiveServer, role: Role, subject: str = "admin-1") -> httpx.Client:
    token = live.token(role, subject)
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60, verify=SHARED_SSL_CONTEXT
    )


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """The store of `settings` with the rate limit off, so 1,000 orders post quickly."""
    return dataclasses.replace(settings, rate_limit_per_minute=0)


@pytest.fixture(scope="module")
def history_bodies() -> list[dict[str, Any]]:
    """Proposed events of a generated history of 1,000 orders, in the generator's upload order."""
    generator = HistoryGenerator(seed=77)
    for number in range(1, ORDERS + 1):
        generator.generate_order(f"wo-{number:05d}")
    return [
        {
            "client_event_id": str(event.client_event_id),
            "work_order_id": event.work_order_id,
            "type": event.type,
            "payload": event.payload,
            "occurred_at": event.effective_time.isoformat(),
            "base_version": event.base_version,
            "device_id": "generator",
        }
        for event in generator.recorded_events()
    ]


def post_all(admin: httpx.Client, bodies: list[dict[str, Any]]) -> None:
    for start in range(0, len(bodies), 500):
        response = admin.post("/v1/events", json={"events": bodies[start : start + 500]})
        assert response.status_code == 200, response.text
        statuses = {decision["status"] for decision in response.json()["decisions"]}
        assert statuses == {"ACCEPTED"}, response.text[:2000]


def kpi(admin: httpx.Client, start: dt.datetime, end: dt.datetime, group_by: str, **extra: Any) -> dict[str, Any]:
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by, **extra}
    response = admin.get("/v1/kpi", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_caught_up(admin: httpx.Client, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        projector = kpi(admin, *WINDOWS[0], "day")["projector"]
        if projector["positions_behind"] == 0:
            return projector
        assert time.monotonic() < deadline, f"the projector did not catch up: {projector}"
        time.sleep(0.1)


def read_log(admin: httpx.Client) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    cursor = 0
    while True:
        response = admin.get("/v1/sync/changes", params={"since": cursor, "limit": 5000})
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(msgspec.convert(item, RecordedEvent) for item in page["events"])
        cursor = int(page["next_cursor"])
        if not page["has_more"]:
            return events


def targets(response: str, resolution: str) -> dict[str, dict[str, str]]:
    return {priority: {"response": response, "resolution": resolution} for priority in ("P1", "P2", "P3", "P4")}


# Contracts of the generated history: tight round-the-clock targets, office hours, and ct-bronze left
# out of the catalog so that its orders stay SLA-unknown.
HISTORY_CONTRACTS = {
    "ct-gold": {"calendar": {"type": "24x7"}, "targets": targets("PT2H", "PT6H")},
    "ct-silver": {
        "calendar": {
            "type": "business",
            "time_zone": "Europe/Berlin",
            "weekly_hours": [[{"start": "08:00:00", "end": "17:00:00"}]] * 5 + [[], []],
        },
        "targets": targets("PT4H", "PT16H"),
    },
}


def register_history_contracts(admin: httpx.Client) -> None:
    post_catalog(
        admin,
        [
            command("contract_registered", contract_id, {"name": contract_id, "policy": policy})
            for contract_id, policy in HISTORY_CONTRACTS.items()
        ],
    )


def sla_met_from_endpoint(admin: httpx.Client, events: list[RecordedEvent]) -> dict[str, bool]:
    """Map each order with a contract to its last cycle's resolution clock (met or breached) from GET .../sla."""
    met: dict[str, bool] = {}
    for event in events:
        if event.type != "created" or event.payload.get("contract_id") is None:
            continue
        response = admin.get(f"/v1/work-orders/{event.work_order_id}/sla")
        assert response.status_code == 200, response.text
        cycles = response.json()["cycles"]
        state = cycles[-1]["resolution"]["state"] if cycles else None
        if state in ("met", "breached"):
            met[event.work_order_id] = state == "met"
    return met


def assert_matches_reference(admin: httpx.Client, events: list[RecordedEvent], sla_met: dict[str, bool]) -> None:
    for start, end in WINDOWS:
        for group_by in ("engineer", "asset", "contract", "day", "component", "asset_model"):
            for repeat_days in (7, 30):
                body = kpi(admin, start, end, group_by, repeat_window_days=repeat_days)
                groups = {
                    group["key"]: engine_figures(msgspec.convert(group, KpiGroup)) for group in body["groups"]
                }
                expected = reference_kpis(
                    events, start, end, group_by, repeat_window_days=repeat_days, sla_met=sla_met
                )
                assert set(groups) == set(expected), (group_by, start)
                assert groups, (group_by, start)
                for key, figures in groups.items():
                    assert_same_figures(key, figures, expected[key])


def test_kpi_matches_reference_across_restart(fast_settings: Settings, history_bodies: list[dict[str, Any]]) -> None:
    half = len(history_bodies) // 2
    with running_server(fast_settings) as live, client(live, Role.ADMIN) as admin:
        register_history_contracts(admin)
        post_all(admin, history_bodies[:half])
        first = wait_caught_up(admin)
    # The SLA clock job may add its own events (warnings, breaches) to the log of contract orders.
    assert first["checkpoint_position"] == first["head_position"] >= half

    with running_server(fast_settings) as live, client(live, Role.ADMIN) as admin:
        post_all(admin, history_bodies[half:])
        projector = wait_caught_up(admin)
        events = read_log(admin)
        field_events = [event for event in events if event.actor_role != Role.SYSTEM.value]
        assert len(field_events) == len(history_bodies)
        assert len(history_bodies) <= projector["checkpoint_position"] <= len(events)
        assert projector["running"] is True
        sla_met = sla_met_from_endpoint(admin, events)
        assert set(sla_met.values()) == {True, False}
        assert_matches_reference(admin, events, sla_met)


def test_lag_reported_until_projector_runs(fast_settings: Settings, history_bodies: list[dict[str, Any]]) -> None:
    bodies = [body for body in history_bodies if body["work_order_id"] <= "wo-00020"]
    with running_server(fast_settings, kpi_projector=False) as live, client(live, Role.ADMIN) as admin:
        post_all(admin, bodies)
        time.sleep(0.5)
        projector = kpi(admin, *WINDOWS[0], "engineer")["projector"]
    assert projector["running"] is False
    assert projector["positions_behind"] == len(bodies)
    assert projector["checkpoint_position"] == 0
    assert projector["seconds_since_checkpoint_event"] is None

    with running_server(fast_settings) as live, client(live, Role.ADMIN) as admin:
        caught_up = wait_caught_up(admin)
    assert caught_up["checkpoint_position"] == len(bodies)
    assert caught_up["seconds_since_checkpoint_event"] >= 0


def worked_order(met_by: str, completed_at: str, hold: tuple[str, str, str] | None = None) -> list[tuple[str, str, dict]]:
    """Steps of an order created 2024-06-14 08:00 UTC and completed at `completed_at`, with an optional hold."""
    steps: list[tuple[str, str, dict]] = [
        ("created", at("2024-06-14 08:00"), {}),
        ("assigned", at("2024-06-14 08:00"), {"engineer_id": "e-1"}),
        ("accepted", at("2024-06-14 08:05"), {}),
        ("travel_started", at("2024-06-14 08:10"), {}),
        ("arrived", at(met_by), {}),
        ("work_started", at("2024-06-14 09:40"), {}),
    ]
    if hold is not None:
        reason, start, end = hold
        steps += [("hold_started", at(start), {"reason": reason}), ("work_resumed", at(end), {})]
    steps.append(("completed", at(completed_at), {"summary": "replaced bearing"}))
    return steps


def test_kpi_sla_compliance_from_contracts(live_server: LiveServer) -> None:
    # P1 on ct-24x7: response 4 h, resolution 8 h, so resolution is due 2024-06-14 16:00 UTC.
    put_contracts(live_server.settings, {"ct-24x7": ROUND_THE_CLOCK})
    with client(live_server, Role.ADMIN) as admin:
        history(admin, "wo-met", worked_order("2024-06-14 09:30", "2024-06-14 12:00"), contract_id="ct-24x7")
        history(admin, "wo-late", worked_order("2024-06-14 09:30", "2024-06-14 20:00"), contract_id="ct-24x7")
        # A customer hold pauses the clock: 11 h elapsed minus 8 h on hold is within target.
        paused = worked_order("2024-06-14 09:30", "2024-06-14 19:00", ("customer", "2024-06-14 10:00", "2024-06-14 18:00"))
        history(admin, "wo-paused", paused, contract_id="ct-24x7")
        # A parts hold does not pause it, so the same timing breaches.
        parts = worked_order("2024-06-14 09:30", "2024-06-14 19:00", ("parts", "2024-06-14 10:00", "2024-06-14 18:00"))
        history(admin, "wo-parts", parts, contract_id="ct-24x7")
        history(admin, "wo-none", worked_order("2024-06-14 09:30", "2024-06-14 12:00"), contract_id=None)
        history(admin, "wo-unknown", worked_order("2024-06-14 09:30", "2024-06-14 12:00"), contract_id="ct-missing")
        wait_caught_up(admin)
        start, end = dt.datetime(2024, 6, 1, tzinfo=UTC), dt.datetime(2024, 7, 1, tzinfo=UTC)
        groups = {group["key"]: group for group in kpi(admin, start, end, "contract")["groups"]}
        by_engineer = kpi(admin, start, end, "engineer")["groups"]

    contracted = groups["ct-24x7"]
    assert contracted["sla_compliance"] == {"hits": 2, "count": 4, "rate": 0.5}
    assert contracted["sla_unknown"] == 0
    assert groups[None]["sla_compliance"]["count"] == 0
    assert groups[None]["sla_unknown"] == 1
    assert groups["ct-missing"]["sla_unknown"] == 1
    assert [group["key"] for group in by_engineer] == ["e-1"]
    assert by_engineer[0]["sla_compliance"] == {"hits": 2, "count": 4, "rate": 0.5}
    assert by_engineer[0]["sla_unknown"] == 2


def failure_event(work_order_id: str, day: int, version: int = 1, event_type: str = "created", **payload: Any) -> dict[str, Any]:
    return {
        "client_event_id": str(uuid.uuid4()),
        "work_order_id": work_order_id,
        "type": event_type,
        "payload": payload,
        "occurred_at": dt.datetime(2024, 3, day, 6, tzinfo=UTC).isoformat(),
        "base_version": version - 1,
        "device_id": "console-1",
    }


def test_kpi_failures_by_model_and_component(live_server: LiveServer) -> None:
    machine = {"title": "Spindle stopped", "site_id": "site-a", "maintenance_type": "corrective"}
    events = [
        failure_event("wo-a1", 1, asset_id="cnc-1", component="spindle", **machine),
        # Two components of cnc-1 fail together on day 3: one stop, one gap of 48 h.
        failure_event("wo-a2", 3, asset_id="cnc-1", component="axis-drive", **machine),
        failure_event("wo-a3", 3, asset_id="cnc-1", component="spindle", **machine),
        failure_event("wo-b1", 2, asset_id="cnc-2", component="spindle", **machine),
        failure_event("wo-p1", 4, asset_id="cnc-2", component="spindle", title="Planned", site_id="site-a",
                      maintenance_type="preventive"),
        failure_event("wo-c1", 5, asset_id="cnc-2", **machine),
        failure_event("wo-c1", 5, 2, "cancelled", reason="duplicate call"),
        failure_event("wo-x1", 6, component="spindle", **machine),
    ]
    with client(live_server, Role.ADMIN) as admin:
        post_catalog(
            admin,
            [
                command("site_registered", "site-a", {"name": "Site A", "time_zone": "UTC"}),
                command("asset_registered", "cnc-1", {"site_id": "site-a", "model": "Haas VF-2", "serial": "1"}),
                command("asset_registered", "cnc-2", {"site_id": "site-a", "model": "DMU 50", "serial": "2"}),
                # cnc-1 was rebuilt on day 2, so its later failures belong to the new model. The snapshot of
                # cnc-2 names no model, so the registered one applies.
                snapshot("cnc-1", "2024-03-02T00:00:00Z", model="Haas VF-2SS"),
                snapshot("cnc-2", "2024-03-01T00:00:00Z", firmware="2.1"),
            ],
        )
        post_all(admin, events)
        wait_caught_up(admin)
        start, end = dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 4, 1, tzinfo=UTC)
        by_model = {group["key"]: group for group in kpi(admin, start, end, "asset_model")["groups"]}
        by_component = {group["key"]: group for group in kpi(admin, start, end, "component")["groups"]}
        by_engineer = kpi(admin, start, end, "engineer")["groups"]
        invalid = admin.get("/v1/kpi", params={"from": start.isoformat(), "to": end.isoformat(), "group_by": "model"})

    assert {key: group["failures"] for key, group in by_model.items()} == {
        None: 1,
        "DMU 50": 1,
        "Haas VF-2": 1,
        "Haas VF-2SS": 2,
    }
    # The gap from day 1 to day 3 belongs to the later failure's model.
    assert by_model["Haas VF-2"]["time_between_failures"]["count"] == 0
    assert by_model["Haas VF-2SS"]["time_between_failures"] == {
        "count": 1,
        "total_seconds": 48 * 3600.0,
        "mean_seconds": 48 * 3600.0,
    }
    assert by_model["DMU 50"]["time_between_failures"]["count"] == 0
    assert {key: group["failures"] for key, group in by_component.items()} == {"axis-drive": 1, "spindle": 4}
    assert by_component["spindle"]["time_between_failures"]["total_seconds"] == 48 * 3600.0
    assert by_engineer == []
    assert invalid.status_code == 422
    assert invalid.json()["field"] == "group_by"


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"to": "2024-02-01T00:00:00Z", "group_by": "day"}, "from", None),
        ({"from": "2024-01-01T00:00:00", "to": "2024-02-01T00:00:00Z", "group_by": "day"}, "from", "2024-01-01T00:00:00"),
        ({"from": "yesterday", "to": "2024-02-01T00:00:00Z", "group_by": "day"}, "from", "yesterday"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-02-30T00:00:00Z", "group_by": "day"}, "to", "2024-02-30T00:00:00Z"),
        ({"from": "2024-02-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "day"}, "from", "2024-02-01T00:00:00Z"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "site"}, "group_by", "site"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}, "group_by", None),
        (
            {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "day", "repeat_window_days": "0"},
            "repeat_window_days",
            0,
        ),
        (
            {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "day", "repeat_window_days": "x"},
            "repeat_window_days",
            "x",
        ),
        ({"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "day", "limit": "5"}, "limit", "5"),
        ({"from": "2024-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z", "group_by": "day"}, "to", "9999-12-31T00:00:00Z"),
    ],
)
def test_kpi_bad_parameters(live_server: LiveServer, params: dict[str, str], field: str, value: Any) -> None:
    with client(live_server, Role.MANAGER, "m-1") as manager:
        response = manager.get("/v1/kpi", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field
    assert body.get("value") == value


@pytest.mark.parametrize("role", list(Role))
def test_kpi_roles(live_server: LiveServer, role: Role) -> None:
    params = {"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z", "group_by": "engineer"}
    with client(live_server, role, "e-1" if role is Role.ENGINEER else f"{role.value}-1") as caller:
        response = caller.get("/v1/kpi", params=params)
    expected = 200 if role in (Role.MANAGER, Role.ADMIN) else 403
    assert response.status_code == expected, response.text
