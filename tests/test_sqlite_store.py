"""The SQLite file behind a live server: append-only triggers, effective time and restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from api_helpers import Clients, all_changes, create_assigned, created, event, now_iso, post_batch, timeline, work_order
from conftest import LiveServer, start_server, stop_server

from server.config import Settings
from server.store import SchemaOutdated, SQLiteStore, StoreUnavailable
from server.store.audit import AuditQuery
from server.store.migrations import latest_version, migrations

LATEST = latest_version("sqlite")


@pytest.fixture
def store_kind() -> str:
    """Run this module on the embedded SQLite store only."""
    return "sqlite"


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def seeded_database(live_server: LiveServer, api: Clients) -> Iterator[sqlite3.Connection]:
    """Record a few events and decisions, then open the server's file with a second connection."""
    dispatcher = api("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(api("engineer", "e-17"), [event("wo-1", "arrived", 2)])
    connection = sqlite3.connect(live_server.settings.sqlite_path, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 5000")
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE events SET type = 'cancelled'", "events are append-only: UPDATE is not allowed"),
        ("UPDATE events SET stream_version = stream_version + 10", "events are append-only: UPDATE is not allowed"),
        ("DELETE FROM events", "events are append-only: DELETE is not allowed"),
        ("DELETE FROM events WHERE global_position = 2", "events are append-only: DELETE is not allowed"),
        ("UPDATE decisions SET status = 'ACCEPTED'", "decisions are append-only: UPDATE is not allowed"),
        ("DELETE FROM decisions", "decisions are append-only: DELETE is not allowed"),
    ],
)
def test_log_tables_reject_changes(seeded_database, statement, message):
    events_before = seeded_database.execute("SELECT * FROM events ORDER BY global_position").fetchall()
    decisions_before = seeded_database.execute("SELECT * FROM decisions ORDER BY decision_id").fetchall()

    with pytest.raises(sqlite3.IntegrityError, match=message):
        seeded_database.execute(statement)

    assert seeded_database.execute("SELECT * FROM events ORDER BY global_position").fetchall() == events_before
    assert seeded_database.execute("SELECT * FROM decisions ORDER BY decision_id").fetchall() == decisions_before
    assert len(events_before) == 2
    assert len(decisions_before) == 3


def test_replay_adds_no_decision_rows(seeded_database, api):
    engineer = api("engineer", "e-17")
    proposal = event("wo-1", "accepted", 2)
    post_batch(engineer, [proposal])
    rows_before = seeded_database.execute("SELECT count(*) FROM decisions").fetchone()[0]

    post_batch(engineer, [proposal])
    post_batch(engineer, [{**proposal, "device_id": "tablet-2"}])

    statuses = seeded_database.execute("SELECT status, reason_code FROM decisions ORDER BY decision_id").fetchall()
    assert seeded_database.execute("SELECT count(*) FROM decisions").fetchone()[0] == rows_before
    assert statuses == [
        ("ACCEPTED", "applied"),
        ("ACCEPTED", "applied"),
        ("REJECTED", "invalid_transition"),
        ("ACCEPTED", "applied"),
    ]


def test_future_occurred_at_clamped(api, live_server):
    dispatcher = api("dispatcher", "d-1")
    far_future = now_iso(dt.timedelta(days=30))

    decision = post_batch(dispatcher, [{**created("wo-1"), "occurred_at": far_future}])[0]
    recorded = all_changes(dispatcher)[0]

    tolerance = dt.timedelta(seconds=live_server.settings.clock_skew_tolerance_seconds)
    assert decision["status"] == "ACCEPTED"
    assert parse_time(recorded["occurred_at"]) == parse_time(far_future)
    assert parse_time(recorded["effective_time"]) == parse_time(recorded["recorded_at"]) + tolerance
    assert parse_time(work_order(dispatcher, "wo-1")["created_at"]) == parse_time(recorded["effective_time"])


def test_small_skew_kept_as_is(api):
    dispatcher = api("dispatcher", "d-1")
    slightly_ahead = now_iso(dt.timedelta(seconds=60))

    post_batch(dispatcher, [{**created("wo-1"), "occurred_at": slightly_ahead}])
    recorded = all_changes(dispatcher)[0]

    assert parse_time(recorded["effective_time"]) == parse_time(slightly_ahead)
    assert parse_time(recorded["occurred_at"]) == parse_time(slightly_ahead)


def test_effective_time_never_goes_back(api):
    dispatcher = api("dispatcher", "d-1")
    first = post_batch(dispatcher, [created("wo-1")])
    assert first[0]["status"] == "ACCEPTED"
    last_week = now_iso(-dt.timedelta(days=7))

    post_batch(dispatcher, [event("wo-1", "assigned", 1, {"engineer_id": "e-17"}, occurred_at=last_week)])
    created_event, assigned_event = all_changes(dispatcher)

    assert parse_time(assigned_event["occurred_at"]) == parse_time(last_week)
    assert assigned_event["effective_time"] == created_event["effective_time"]
    assert timeline(dispatcher, "wo-1")[1]["effective_time"] == created_event["effective_time"]


def test_occurred_at_offset_kept_in_feed(api):
    dispatcher = api("dispatcher", "d-1")
    local = (dt.datetime.now(dt.timezone(dt.timedelta(hours=2))) - dt.timedelta(minutes=5)).isoformat()

    post_batch(dispatcher, [{**created("wo-1"), "occurred_at": local}])
    recorded = all_changes(dispatcher)[0]

    assert parse_time(recorded["occurred_at"]) == parse_time(local)
    assert recorded["effective_time"].endswith("Z")


def test_restart_keeps_log_and_positions(tmp_path):
    settings = Settings(var_dir=tmp_path / "var")
    server, thread, base_url = start_server(settings)
    clients = Clients(LiveServer(base_url=base_url, settings=settings))
    try:
        post_batch(clients("dispatcher", "d-1"), [created("wo-1"), created("wo-2")])
    finally:
        clients.close()
        stop_server(server, thread)

    server, thread, base_url = start_server(settings)
    clients = Clients(LiveServer(base_url=base_url, settings=settings))
    try:
        dispatcher = clients("dispatcher", "d-1")
        replay = post_batch(dispatcher, [created("wo-3")])
        events = all_changes(dispatcher)
        ready = dispatcher.get("/ready").json()
    finally:
        clients.close()
        stop_server(server, thread)

    assert replay[0]["global_position"] == 3
    assert [e["work_order_id"] for e in events] == ["wo-1", "wo-2", "wo-3"]
    assert ready == {"status": "ready", "events": 3}


def test_newer_schema_raises(tmp_path):
    path = tmp_path / "csdp.sqlite3"
    store = SQLiteStore(path)
    asyncio.run(store.open())
    asyncio.run(store.close())
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, '2030-01-01')", (LATEST + 1,))
    connection.close()

    outdated_store = SQLiteStore(path)

    with pytest.raises(SchemaOutdated, match=f"has schema version {LATEST + 1}, newer than this server's {LATEST}"):
        asyncio.run(outdated_store.open())
    with pytest.raises(StoreUnavailable, match="is closed"):
        asyncio.run(outdated_store.count_events())


def test_concurrent_first_open_creates_schema_once(tmp_path):
    async def open_together(path: Path) -> list[object]:
        stores = [SQLiteStore(path) for _ in range(4)]
        results = await asyncio.gather(*(store.open() for store in stores), return_exceptions=True)
        counts = [await store.count_events() for store in stores]
        for store in stores:
            await store.close()
        return [*results, *counts]

    # The collisions depend on thread timing, so several fresh files raise the odds of meeting them.
    for attempt in range(10):
        path = tmp_path / f"csdp-{attempt}.sqlite3"

        outcomes = asyncio.run(open_together(path))

        assert outcomes == [None, None, None, None, 0, 0, 0, 0]
        with sqlite3.connect(path) as connection:
            versions = connection.execute("SELECT version FROM schema_migrations").fetchall()
        connection.close()
        assert versions == [(version,) for version in range(1, LATEST + 1)]


def test_parallel_batches_get_gapless_positions(api):
    subjects = [f"d-{i}" for i in range(8)]
    clients = {subject: api("dispatcher", subject) for subject in subjects}

    def create_orders(subject: str) -> list[dict]:
        return post_batch(clients[subject], [created(f"{subject}-wo-{i}") for i in range(5)])

    with ThreadPoolExecutor(max_workers=len(subjects)) as pool:
        decisions = [d for batch in pool.map(create_orders, subjects) for d in batch]
    events = all_changes(clients["d-0"])

    assert sorted(d["global_position"] for d in decisions) == list(range(1, 41))
    assert [e["global_position"] for e in events] == list(range(1, 41))
    for subject in subjects:
        positions = [e["global_position"] for e in events if e["actor"] == subject]
        assert positions == list(range(positions[0], positions[0] + 5))


def test_parallel_conflicting_assignments_one_wins(api):
    dispatcher = api("dispatcher", "d-0")
    post_batch(dispatcher, [created("wo-1")])
    racers = {f"e-{i}": api("dispatcher", f"d-{i}") for i in range(1, 7)}

    def assign(engineer_id: str) -> dict:
        return post_batch(racers[engineer_id], [event("wo-1", "assigned", 1, {"engineer_id": engineer_id})])[0]

    with ThreadPoolExecutor(max_workers=len(racers)) as pool:
        decisions = dict(zip(racers, pool.map(assign, racers)))

    winners = [engineer_id for engineer_id, d in decisions.items() if d["status"] == "ACCEPTED"]
    losers = [d for d in decisions.values() if d["status"] != "ACCEPTED"]
    assert len(winners) == 1
    assert {(d["status"], d["reason_code"]) for d in losers} == {("REJECTED", "superseded")}
    assert {d["work_order_version"] for d in losers} == {2}
    state = work_order(dispatcher, "wo-1")
    assert state["version"] == 2
    assert state["engineer_id"] == winners[0]


def test_demo_loads_once(tmp_path):
    settings = Settings(var_dir=tmp_path / "var")
    for _ in range(2):
        server, thread, base_url = start_server(settings, demo=True)
        clients = Clients(LiveServer(base_url=base_url, settings=settings))
        try:
            ready = clients("dispatcher", "d-1").get("/ready").json()
        finally:
            clients.close()
            stop_server(server, thread)

        assert ready == {"status": "ready", "events": 5}


def test_older_file_migrated_on_open(tmp_path):
    path = tmp_path / "csdp.sqlite3"
    first_version = migrations("sqlite")[0][1]
    with sqlite3.connect(path) as connection:
        connection.executescript(first_version)
        connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, '2026-01-01')")
        connection.execute("INSERT INTO engineers (engineer_id, name) VALUES ('e-17', 'Ada')")
    connection.close()

    store = SQLiteStore(path)
    asyncio.run(store.open())
    page = asyncio.run(store.audit(AuditQuery()))
    asyncio.run(store.close())

    with sqlite3.connect(path) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_migrations ORDER BY version")]
        engineers = connection.execute("SELECT engineer_id FROM legacy_engineers").fetchall()
    connection.close()
    assert versions == list(range(1, LATEST + 1))
    assert engineers == [("e-17",)]
    assert page.items == []


def test_older_file_not_migrated_without_permission(tmp_path):
    path = tmp_path / "csdp.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(migrations("sqlite")[0][1])
        connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, '2026-01-01')")
    connection.close()

    with pytest.raises(SchemaOutdated, match=f"has schema version 1, this server needs {LATEST}"):
        asyncio.run(SQLiteStore(path).open(migrate=False))
