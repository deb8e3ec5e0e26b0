"""The SLA clock job: each crossing recorded once, visible in the feed, timeline and audit."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from api_helpers import Clients, all_changes, timeline
from conftest import LiveServer, start_server, stop_server
from sla_helpers import ROUND_THE_CLOCK, history, put_contracts, run_with_store, sla

from sdk_helpers import Tablets
from server.config import Settings
from server.sla.clock_job import SYSTEM_ACTOR, crossing_event_id, run_clock_once
from server.store import create_store
from shared_schema import (
    SERVER_ORIGIN_TYPES,
    TRANSITION_INDEX,
    RecordedEvent,
    Role,
    WorkOrderState,
    apply_event,
    parse_payload,
)

UTC = dt.timezone.utc
SLA_TYPES = set(SERVER_ORIGIN_TYPES)


@pytest.fixture
def clients(live_server) -> Iterator[Clients]:
    put_contracts(live_server.settings, {"ct-24x7": ROUND_THE_CLOCK})
    pool = Clients(live_server)
    yield pool
    pool.close()


def open_order(admin, work_order_id: str, hours_ago: float, contract_id: str | None = "ct-24x7") -> dt.datetime:
    """Create and assign a P1 order `hours_ago`; with the 24x7 policy its response is due 4 hours later."""
    start = dt.datetime.now(UTC) - dt.timedelta(hours=hours_ago)
    history(
        admin,
        work_order_id,
        [("created", start.isoformat(), {}), ("assigned", start.isoformat(), {"engineer_id": "e-1"})],
        contract_id=contract_id,
    )
    return start


def clock_once(settings: Settings, now: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    async def run(store):  # type: ignore[no-untyped-def]
        return await run_clock_once(store, now or dt.datetime.now(UTC))

    return run_with_store(settings, run)


def sla_events(client, work_order_id: str) -> list[dict]:  # type: ignore[type-arg]
    return [item for item in all_changes(client) if item["work_order_id"] == work_order_id and item["type"] in SLA_TYPES]


def test_warning_and_breach_recorded_once(live_server, clients):
    admin = clients(Role.ADMIN, "admin-1")
    start = open_order(admin, "wo-late", hours_ago=5)
    open_order(admin, "wo-no-contract", hours_ago=5, contract_id=None)

    first = clock_once(live_server.settings)
    second = clock_once(live_server.settings)

    assert sorted(key for _, key in first.recorded) == [
        "1/resolution/warning/0.5",
        "1/response/breach/1.0",
        "1/response/warning/0.5",
        "1/response/warning/0.75",
    ]
    assert {order for order, _ in first.recorded} == {"wo-late"}
    assert second.recorded == []
    events = sla_events(admin, "wo-late")
    assert [(item["type"], item["payload"]["crossing_key"]) for item in events] == [
        ("sla_warning", "1/response/warning/0.5"),
        ("sla_warning", "1/response/warning/0.75"),
        # Both reached 4 hours after creation; equal instants go by key.
        ("sla_warning", "1/resolution/warning/0.5"),
        ("sla_breached", "1/response/breach/1.0"),
    ]
    breach = events[3]
    assert breach["actor"] == SYSTEM_ACTOR.subject
    assert breach["actor_role"] == "system"
    assert breach["client_event_id"] == str(crossing_event_id("wo-late", "1/response/breach/1.0"))
    assert dt.datetime.fromisoformat(breach["payload"]["crossed_at"]) == start + dt.timedelta(hours=4)
    assert breach["payload"]["due_at"] == breach["payload"]["crossed_at"]
    assert "threshold" not in breach["payload"]
    assert events[0]["payload"]["threshold"] == 0.5
    assert sla_events(admin, "wo-no-contract") == []


def test_sla_events_keep_state_and_updated_at(live_server, clients):
    admin = clients(Role.ADMIN, "admin-1")
    open_order(admin, "wo-keep", hours_ago=5)
    before = admin.get("/v1/work-orders/wo-keep").json()

    clock_once(live_server.settings)
    after = admin.get("/v1/work-orders/wo-keep").json()

    assert after["status"] == before["status"] == "assigned"
    assert after["updated_at"] == before["updated_at"]
    assert after["version"] == before["version"] + 4


def test_sla_events_in_timeline_and_audit(live_server, clients):
    admin = clients(Role.ADMIN, "admin-1")
    open_order(admin, "wo-seen", hours_ago=5)
    clock_once(live_server.settings)

    entries = [entry for entry in timeline(admin, "wo-seen") if entry["type"] in SLA_TYPES]
    audit = admin.get("/v1/audit", params={"work_order_id": "wo-seen"})

    assert len(entries) == 4
    assert {entry["status"] for entry in entries} == {"ACCEPTED"}
    assert audit.status_code == 200, audit.text
    audited = [item for item in audit.json()["items"] if item["event_type"] in SLA_TYPES]
    assert len(audited) == 4
    assert {item["subject"] for item in audited} == {SYSTEM_ACTOR.subject}
    assert {item["role"] for item in audited} == {"system"}
    assert {item["outcome"] for item in audited} == {"ACCEPTED"}


def test_engineer_pull_folds_sla_events(live_server, clients):
    """The assigned engineer's feed carries the SLA events, and the shared fold accepts the whole stream."""
    admin = clients(Role.ADMIN, "admin-1")
    open_order(admin, "wo-pull", hours_ago=5)
    clock_once(live_server.settings)
    engineer = clients(Role.ENGINEER, "e-1")

    pulled = [item["type"] for item in all_changes(engineer) if item["work_order_id"] == "wo-pull"]
    feed = [msgspec.convert(item, RecordedEvent) for item in all_changes(admin) if item["work_order_id"] == "wo-pull"]
    state: WorkOrderState | None = None
    for recorded in feed:
        row = TRANSITION_INDEX[(state.status if state else None, recorded.type)]
        state = apply_event(state, recorded.work_order_id, parse_payload(recorded.type, recorded.payload), row.to_state, recorded.effective_time)

    assert pulled.count("sla_warning") == 3
    assert pulled.count("sla_breached") == 1
    assert state is not None
    assert state.version == 6
    assert state.status.value == "assigned"


def test_sdk_sync_over_sla_events(live_server, clients, tmp_path):
    """A tablet pulls an order with SLA events, then records field work on top of the new version."""
    admin = clients(Role.ADMIN, "admin-1")
    open_order(admin, "wo-sdk", hours_ago=5)
    clock_once(live_server.settings)
    tablets = Tablets(live_server, tmp_path / "devices")
    try:
        tablet = tablets.open(engineer="e-1")
        tablet.pull()
        confirmed = tablet.confirmed_work_orders()["wo-sdk"]
        assert (confirmed.version, confirmed.status.value) == (6, "assigned")

        tablet.record("wo-sdk", "accepted")
        report = tablet.sync()
    finally:
        tablets.close_all()

    assert (report.pushed, report.accepted, report.rejected, report.needs_review) == (1, 1, 0, 0)
    assert admin.get("/v1/work-orders/wo-sdk").json()["status"] == "accepted"


def test_moved_crossing_stays_as_history(live_server, clients):
    admin = clients(Role.ADMIN, "admin-1")
    start = open_order(admin, "wo-moved", hours_ago=3.2)
    assert sorted(key for _, key in clock_once(live_server.settings).recorded) == [
        "1/response/warning/0.5",
        "1/response/warning/0.75",
    ]

    # A late arrival an hour ago means the response clock stopped before the
    # 0.75 mark; the recorded warning stays, the view shows the truth.
    arrival = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    history(
        admin,
        "wo-moved",
        [
            ("accepted", (start + dt.timedelta(minutes=5)).isoformat(), {}),
            ("travel_started", (start + dt.timedelta(minutes=10)).isoformat(), {}),
            ("arrived", arrival.isoformat(), {}),
        ],
        contract_id=None,
        first_version=4,
    )
    rerun = clock_once(live_server.settings)

    assert rerun.recorded == []
    keys = [item["payload"]["crossing_key"] for item in sla_events(admin, "wo-moved")]
    assert keys == ["1/response/warning/0.5", "1/response/warning/0.75"]
    response = sla(admin, "wo-moved")["cycles"][0]["response"]
    assert response["state"] == "met"
    assert [item["key"] for item in response["crossings"]] == ["1/response/warning/0.5"]


def test_parallel_runs_record_once(live_server, clients):
    """Two stores on one database (two server processes) run the job at the same time."""
    admin = clients(Role.ADMIN, "admin-1")
    for index in range(5):
        open_order(admin, f"wo-par-{index}", hours_ago=5)
    now = dt.datetime.now(UTC)

    async def both() -> list:  # type: ignore[type-arg]
        stores = [create_store(live_server.settings) for _ in range(2)]
        for store in stores:
            await store.open()
        try:
            return await asyncio.gather(*(run_clock_once(store, now) for store in stores))
        finally:
            for store in stores:
                await store.close()

    runs = asyncio.run(both())

    recorded = [item for run in runs for item in run.recorded]
    assert len(recorded) == len(set(recorded)) == 5 * 4
    for index in range(5):
        assert len(sla_events(admin, f"wo-par-{index}")) == 4


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_two_servers_record_once(settings: Settings, store_kind):
    """Two servers with the clock job on one PostgreSQL database record each crossing once."""
    put_contracts(settings, {"ct-24x7": ROUND_THE_CLOCK})
    fast = Settings(var_dir=settings.var_dir, database_url=settings.database_url, sla_clock_seconds=0.1)
    servers = [start_server(fast) for _ in range(2)]
    try:
        live = LiveServer(base_url=servers[0][2], settings=fast)
        pool = Clients(live)
        admin = pool(Role.ADMIN, "admin-1")
        for index in range(3):
            open_order(admin, f"wo-two-{index}", hours_ago=5)
        deadline = time.monotonic() + 20
        while sum(len(sla_events(admin, f"wo-two-{index}")) for index in range(3)) < 12:
            assert time.monotonic() < deadline, "the clock jobs did not record the crossings within 20 seconds"
            time.sleep(0.1)
        # Let both jobs run several more times over the recorded crossings.
        time.sleep(0.5)

        for index in range(3):
            events = sla_events(admin, f"wo-two-{index}")
            keys = [item["payload"]["crossing_key"] for item in events]
            assert len(keys) == len(set(keys)) == 4
        pool.close()
    finally:
        for server, thread, _ in servers:
            stop_server(server, thread)


def test_clock_job_setting_is_validated():
    from server.config import ConfigError

    assert Settings.from_env({"CSDP_SLA_CLOCK_SECONDS": "0"}).sla_clock_seconds == 0
    assert Settings.from_env({}).sla_clock_seconds == 30
    for raw in ("-1", "soon", "nan", "86401"):
        with pytest.raises(ConfigError, match="CSDP_SLA_CLOCK_SECONDS"):
            Settings.from_env({"CSDP_SLA_CLOCK_SECONDS": raw})


def test_crossing_ids_are_deterministic():
    assert crossing_event_id("wo-1", "1/response/warning/0.5") == crossing_event_id("wo-1", "1/response/warning/0.5")
    assert crossing_event_id("wo-1", "1/response/warning/0.5") != crossing_event_id("wo-2", "1/response/warning/0.5")
    assert isinstance(crossing_event_id("wo-1", "k"), uuid.UUID)
