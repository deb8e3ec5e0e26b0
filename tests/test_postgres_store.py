"""The PostgreSQL store behind a live server: append-only triggers, races, commit order, outages and migrations.

Every test runs in its own schema of the session database (see the `settings`
fixture). Raw asyncpg connections on the same schema act as a second writer
or an operator, and `pg_terminate_backend` on the session database simulates
a database failover. The PostgreSQL cluster itself is never restarted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest
from api_helpers import Clients, all_changes, create_assigned, created, event, post_batch, timeline, work_order
from conftest import POSTGRES_ADMIN_URL, SHARED_SSL_CONTEXT, LiveServer
from sdk_helpers import FIELD_FLOW, Tablets, record_flow

from client_sdk import SyncClient
from client_sdk.store import OutboxEntry
from server.store import PostgresStore, SchemaOutdated, StoreUnavailable
from server.store.errors import InvalidValue
from server.store.audit import AuditQuery
from server.store.migrations import latest_version, postgres_migrations

LATEST = latest_version("postgres")
from shared_schema import Actor, ProposedEvent, Role

TERMINATE_BACKENDS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)
EVENTS_BY_CLIENT_ID = "SELECT * FROM events WHERE client_event_id = $1"
COUNT_LOCK_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = $1 AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
)


@pytest.fixture
def store_kind() -> str:
    """Run this module on the PostgreSQL store only."""
    return "postgres"


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


@pytest.fixture
def database_name(postgres_database: str) -> str:
    return postgres_database.rpartition("/")[2]


@pytest.fixture
def empty_schema_url(postgres_database: str) -> Iterator[str]:
    """Create an empty schema in the session database and yield a URL whose search_path is that schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    execute(postgres_database, f"CREATE SCHEMA {schema}")
    yield f"{postgres_database}?search_path={schema}"
    execute(postgres_database, f"DROP SCHEMA {schema} CASCADE")


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a new connection and return its rows."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run `query` from synchronous code."""
    return asyncio.run(query(url, sql, *args))


def execute(url: str, sql: str, *args: Any) -> None:
    """Run `query` from synchronous code and drop its rows."""
    fetch(url, sql, *args)


def terminate_backends(url: str, database: str) -> int:
    """Terminate every connection to `database` except the one that runs the query, and return how many."""
    return fetch(url, TERMINATE_BACKENDS, database)[0][0]


def wait_for_lock_waiters(url: str, database: str, expected: int, timeout: float = 10) -> None:
    """Poll until `expected` backends of `database` wait for a lock, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while fetch(url, COUNT_LOCK_WAITERS, database)[0][0] < expected:
        if time.monotonic() > deadline:
            pytest.fail(f"{expected} backends did not start waiting for a lock within {timeout} s")
        time.sleep(0.02)


def run_together(tasks: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables on threads that start together at a barrier, and return their results in order."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], Any]) -> Any:
        barrier.wait(timeout=10)
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


# -- append-only log -----------------------------------------------------------


@pytest.fixture
def seeded_schema(live_server: LiveServer, api: Clients) -> str:
    """Record three events and their decisions through the server, and return the schema's URL."""
    create_assigned(api("dispatcher", "d-1"), "wo-1", "e-17")
    post_batch(api("engineer", "e-17"), [event("wo-1", "accepted", 2)])
    return live_server.settings.database_url


async def table_rows(connection: asyncpg.Connection) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    events = await connection.fetch("SELECT * FROM events ORDER BY global_position")
    decisions = await connection.fetch("SELECT * FROM decisions ORDER BY decision_id")
    return events, decisions


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET type = 'cancelled'",
        "UPDATE events SET global_position = global_position + 100",
        "DELETE FROM events WHERE global_position = 3",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
        # With the decisions trigger disabled, only the events trigger can stop the TRUNCATE.
        "ALTER TABLE decisions DISABLE TRIGGER decisions_no_truncate; TRUNCATE events CASCADE",
        "UPDATE decisions SET status = 'ACCEPTED'",
        "DELETE FROM decisions WHERE decision_id = 1",
        "DELETE FROM decisions",
        "TRUNCATE decisions",
    ],
)
async def test_log_tables_reject_changes(seeded_schema, statement):
    connection = await asyncpg.connect(seeded_schema)
    try:
        events_before, decisions_before = await table_rows(connection)

        with pytest.raises(asyncpg.RestrictViolationError) as failure:
            async with connection.transaction():
                await connection.execute(statement)

        events_after, decisions_after = await table_rows(connection)
    finally:
        await connection.close()
    assert failure.value.sqlstate == "23001"
    assert events_after == events_before
    assert decisions_after == decisions_before
    assert len(events_before) == 3
    assert len(decisions_before) == 3


def test_plain_truncate_blocked_by_references(seeded_schema):
    async def truncate() -> None:
        connection = await asyncpg.connect(seeded_schema)
        try:
            await connection.execute("TRUNCATE events")
        finally:
            await connection.close()

    with pytest.raises(asyncpg.FeatureNotSupportedError) as failure:
        asyncio.run(truncate())

    assert failure.value.sqlstate == "0A000"
    assert fetch(seeded_schema, "SELECT count(*) FROM events")[0][0] == 3


def test_appends_work_after_rejected_changes(seeded_schema, api):
    with pytest.raises(asyncpg.RestrictViolationError):
        execute(seeded_schema, "DELETE FROM events")

    decision = post_batch(api("engineer", "e-17"), [event("wo-1", "travel_started", 3)])[0]

    assert decision["status"] == "ACCEPTED"
    assert decision["global_position"] == 4
    assert [e["global_position"] for e in all_changes(api("dispatcher", "d-1"))] == [1, 2, 3, 4]


# -- racing writers --------------------------------------------------------------


def test_twenty_dispatchers_race_one_order(api, live_server):
    """20 dispatchers assign the same new order at base_version 1, each adding a note in the same batch."""
    post_batch(api("dispatcher", "d-0"), [created("wo-1")])
    racers = {f"e-{i}": api("dispatcher", f"d-{i}") for i in range(1, 21)}

    def propose(engineer_id: str) -> Callable[[], list[dict]]:
        batch = [
            event("wo-1", "assigned", 1, {"engineer_id": engineer_id}),
            event("wo-1", "note_added", 1, {"text": f"assigning {engineer_id}"}),
        ]
        return lambda: post_batch(racers[engineer_id], batch)

    results = dict(zip(racers, run_together([propose(engineer_id) for engineer_id in racers])))
    assignments = {engineer_id: decisions[0] for engineer_id, decisions in results.items()}
    notes = [decisions[1] for decisions in results.values()]
    winners = [engineer_id for engineer_id, d in assignments.items() if d["status"] == "ACCEPTED"]
    losers = [d for d in assignments.values() if d["status"] != "ACCEPTED"]
    dispatcher = api("dispatcher", "d-0")
    feed = [e for e in all_changes(dispatcher) if e["work_order_id"] == "wo-1"]
    entries = timeline(dispatcher, "wo-1")
    accepted_entries = [entry for entry in entries if entry["status"] == "ACCEPTED"]
    state = work_order(dispatcher, "wo-1")
    stored_versions = fetch(
        live_server.settings.database_url,
        "SELECT stream_version FROM events WHERE work_order_id = 'wo-1' ORDER BY global_position",
    )

    assert len(winners) == 1
    assert len(losers) == 19
    assert {d["status"] for d in losers} == {"REJECTED"}
    assert {d["reason_code"] for d in losers} <= {"invalid_transition", "superseded"}
    assert all(d["event_id"] is None and d["stream_version"] is None for d in losers)
    assert {d["status"] for d in notes} == {"ACCEPTED"}
    assert [e["stream_version"] for e in feed] == list(range(1, 23))
    assert [e["global_position"] for e in feed] == list(range(1, 23))
    assert [row[0] for row in stored_versions] == list(range(1, 23))
    accepted = [d for d in [*assignments.values(), *notes] if d["status"] == "ACCEPTED"]
    by_event_id = {e["event_id"]: e for e in feed}
    for decision in accepted:
        recorded = by_event_id[decision["event_id"]]
        assert recorded["stream_version"] == decision["stream_version"]
        assert recorded["global_position"] == decision["global_position"]
    assert len(entries) == 41
    assert [entry["event_id"] for entry in accepted_entries] == [e["event_id"] for e in feed]
    assert [entry["stream_version"] for entry in accepted_entries] == list(range(1, 23))
    assert state["version"] == 22
    assert state["status"] == "assigned"
    assert state["engineer_id"] == winners[0]


# -- idempotency under parallel requests -------------------------------------------


def test_parallel_duplicates_decided_once(api, live_server):
    """The same client_event_id from one subject, sent on two connections at once, 20 times."""
    first, second = api("dispatcher", "d-1"), api("dispatcher", "d-1")
    rounds = []
    for index in range(20):
        proposal = created(f"wo-{index}")
        responses = run_together([lambda: post_batch(first, [proposal]), lambda: post_batch(second, [proposal])])
        rounds.append((proposal, responses))
    stored = fetch(live_server.settings.database_url, "SELECT client_event_id, count(*) FROM events GROUP BY 1")
    events_per_id = {str(row[0]): row[1] for row in stored}
    decision_count = fetch(live_server.settings.database_url, "SELECT count(*) FROM decisions")[0][0]

    for proposal, ([first_decision], [second_decision]) in rounds:
        assert events_per_id[proposal["client_event_id"]] == 1
        assert first_decision["status"] == second_decision["status"] == "ACCEPTED"
        assert first_decision["event_id"] == second_decision["event_id"]
        assert first_decision["stream_version"] == second_decision["stream_version"] == 1
        assert first_decision["global_position"] == second_decision["global_position"]
        assert first_decision["decided_at"] == second_decision["decided_at"]
        assert sorted([first_decision["replay"], second_decision["replay"]]) == [False, True]
    assert len(events_per_id) == 20
    assert decision_count == 20
    assert [e["global_position"] for e in all_changes(first)] == list(range(1, 21))


def test_in_batch_replay_gets_final_position(api):
    """A client_event_id repeated inside one batch, on a log that is not empty, gets the real position twice."""
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created("wo-1"), created("wo-2")])
    proposal = created("wo-3")

    decisions = post_batch(dispatcher, [created("wo-4"), proposal, proposal])

    assert [d["global_position"] for d in decisions] == [3, 4, 4]
    assert decisions[2]["replay"] is True
    assert {**decisions[2], "replay": False} == decisions[1]
    assert [e["global_position"] for e in all_changes(dispatcher)] == [1, 2, 3, 4]


def check_reused_key_round(
    decisions: tuple[dict[str, Any], dict[str, Any]],
    events: dict[str, dict[str, Any]],
    log_rows: list[asyncpg.Record],
) -> None:
    """Check the two decisions on one client_event_id sent for two different orders at once.

    `events` maps event_id to the events of the feed, and `log_rows` are the
    rows of the events table that carry this client_event_id.
    """
    first_decision, second_decision = decisions
    if first_decision["reason_code"] == "applied":
        original, reused = first_decision, second_decision
    else:
        original, reused = second_decision, first_decision
    assert original["status"] == "ACCEPTED"
    assert original["replay"] is False
    assert reused["status"] == "REJECTED"
    assert reused["reason_code"] == "idempotency_key_reused"
    assert reused["event_id"] is None
    assert reused["global_position"] is None
    assert events[original["event_id"]]["work_order_id"] == original["work_order_id"]
    assert events[original["event_id"]]["global_position"] == original["global_position"]
    assert len(log_rows) == 1
    assert log_rows[0]["work_order_id"] == original["work_order_id"]


def test_reused_key_across_orders_at_once(api, live_server):
    """The same client_event_id from one subject for two different orders at once, 20 times.

    The two requests lock different streams, so both may decide the event as
    new. The one that commits second then meets the other's decision as a
    unique violation. The store reruns that transaction, which rejects the
    proposal as a reused key.
    """
    url = live_server.settings.database_url
    first, second = api("dispatcher", "d-1"), api("dispatcher", "d-1")
    rounds = []
    for index in range(20):
        proposal = created(f"wo-a-{index}")
        twin = {**created(f"wo-b-{index}"), "client_event_id": proposal["client_event_id"]}
        responses = run_together([lambda: post_batch(first, [proposal]), lambda: post_batch(second, [twin])])
        rounds.append((proposal, responses))
    events = {e["event_id"]: e for e in all_changes(first)}

    for proposal, ([first_decision], [second_decision]) in rounds:
        log_rows = fetch(url, EVENTS_BY_CLIENT_ID, uuid.UUID(proposal["client_event_id"]))
        check_reused_key_round((first_decision, second_decision), events, log_rows)
    assert len(events) == 20
    assert fetch(url, "SELECT count(*) FROM decisions")[0][0] == 20


def test_reused_key_retry_after_conflict(api, live_server, database_name):
    """Force the unique-violation retry: both requests wait at a locked position counter, then race to commit.

    Both plan the event as new while a raw transaction has the counter row
    locked. When it commits, the first writer commits its decision and the
    second one's INSERT INTO decisions fails with a unique violation. Its
    rerun finds the committed decision and returns idempotency_key_reused.
    Nothing it wrote before the violation (an events row, a counter step)
    survives.
    """
    url = live_server.settings.database_url
    first, second = api("dispatcher", "d-1"), api("dispatcher", "d-1")

    async def hold_counter_until_both_wait(proposal: dict, twin: dict) -> tuple[dict, dict]:
        holder = await asyncpg.connect(url)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                async with holder.transaction():
                    await holder.execute("SELECT last_position FROM position_counter FOR UPDATE")
                    first_request = pool.submit(post_batch, first, [proposal])
                    second_request = pool.submit(post_batch, second, [twin])
                    await asyncio.to_thread(wait_for_lock_waiters, url, database_name, 2)
                return first_request.result(timeout=10)[0], second_request.result(timeout=10)[0]
        finally:
            await holder.close()

    for index in range(3):
        proposal = created(f"wo-a-{index}")
        twin = {**created(f"wo-b-{index}"), "client_event_id": proposal["client_event_id"]}

        decisions = asyncio.run(hold_counter_until_both_wait(proposal, twin))

        events = {e["event_id"]: e for e in all_changes(first)}
        log_rows = fetch(url, EVENTS_BY_CLIENT_ID, uuid.UUID(proposal["client_event_id"]))
        check_reused_key_round(decisions, events, log_rows)
    assert [e["global_position"] for e in all_changes(first)] == [1, 2, 3]
    assert fetch(url, "SELECT last_position FROM position_counter")[0][0] == 3
    assert fetch(url, "SELECT count(*) FROM decisions")[0][0] == 3
    # nextval is never rolled back, so 6 ids taken for 3 rows shows that each
    # round's second INSERT INTO decisions ran and failed, which is the retry path.
    assert fetch(url, "SELECT last_value FROM decisions_decision_id_seq")[0][0] == 6


# -- global order under a held position counter -----------------------------------


async def test_positions_follow_commit_order(live_server):
    """Prove that readers of the feed never skip an event that commits late, and that a rollback leaves no hole.

    A raw transaction runs the store's own append for one event and stays
    open, so it has position 2 and the counter row locked, as a slow request
    would. Meanwhile a POST of two new orders waits for the counter instead
    of taking positions 3 and 4 ahead of the uncommitted 2, and every read of
    the feed stops at 1. After COMMIT the feed continues 2, 3, 4 with no skip.
    A second held append is rolled back. The waiting POST then takes its
    position, so the log stays 1..7 without a hole and the POST does not
    wait forever.
    """
    settings = live_server.settings
    url = settings.database_url
    headers = {"Authorization": f"Bearer {live_server.token('dispatcher', 'd-1')}"}
    store = PostgresStore(url)
    actor = Actor(subject="d-held", role=Role.DISPATCHER)
    skew = dt.timedelta(seconds=settings.clock_skew_tolerance_seconds)

    def proposal(work_order_id: str) -> ProposedEvent:
        body = created(work_order_id)
        return ProposedEvent(
            client_event_id=uuid.UUID(body["client_event_id"]),
            work_order_id=work_order_id,
            type="created",
            payload=body["payload"],
            occurred_at=dt.datetime.now(dt.timezone.utc),
            base_version=0,
            device_id="console-held",
        )

    async def feed_positions(http: httpx.AsyncClient, since: int) -> tuple[list[int], int]:
        response = await http.get("/v1/sync/changes", params={"since": since})
        assert response.status_code == 200, response.text
        page = response.json()
        return [e["global_position"] for e in page["events"]], int(page["next_cursor"])

    async def read_feed_for(http: httpx.AsyncClient, seconds: float) -> list[tuple[list[int], int]]:
        """Read the feed from the start every 50 ms for `seconds`, and return the positions and cursor of each page."""
        pages = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pages.append(await feed_positions(http, 0))
            await asyncio.sleep(0.05)
        return pages

    async def append_and_hold(holder: asyncpg.Connection, work_order_id: str) -> tuple[Any, list]:
        """Start a transaction on `holder` and run the store's append of one order in it, leaving it open."""
        transaction = holder.transaction()
        await transaction.start()
        now = dt.datetime.now(dt.timezone.utc)
        return transaction, await store._append_batch(holder, actor, [proposal(work_order_id)], now, skew)

    def post_orders(http: httpx.AsyncClient, work_order_ids: list[str]) -> asyncio.Task:
        body = {"events": [created(work_order_id) for work_order_id in work_order_ids]}
        return asyncio.create_task(http.post("/v1/events", json=body))

    client_options = {"base_url": live_server.base_url, "headers": headers, "timeout": 30, "verify": SHARED_SSL_CONTEXT}
    async with httpx.AsyncClient(**client_options) as http:
        response = await http.post("/v1/events", json={"events": [created("wo-1")]})
        assert response.status_code == 200, response.text
        holder = await asyncpg.connect(url)
        try:
            transaction, held_decisions = await append_and_hold(holder, "wo-held-1")
            waiting = post_orders(http, ["wo-2", "wo-3"])
            pages_while_held = await read_feed_for(http, 0.5)
            pending_while_held = not waiting.done()
            await transaction.commit()
            committed_batch = await asyncio.wait_for(waiting, timeout=10)
            positions_after_commit, _ = await feed_positions(http, 1)

            transaction, rolled_back = await append_and_hold(holder, "wo-held-2")
            waiting = post_orders(http, ["wo-4", "wo-5", "wo-6"])
            await asyncio.sleep(0.5)
            pending_before_rollback = not waiting.done()
            await transaction.rollback()
            batch_after_rollback = await asyncio.wait_for(waiting, timeout=10)
            all_positions, _ = await feed_positions(http, 0)
        finally:
            await holder.close()
        rolled_back_order = await http.get("/v1/work-orders/wo-held-2")

    assert held_decisions[0].global_position == 2
    assert pending_while_held
    assert len(pages_while_held) >= 5
    assert {tuple(positions) for positions, _ in pages_while_held} == {(1,)}
    assert {cursor for _, cursor in pages_while_held} == {1}
    assert committed_batch.status_code == 200
    assert [d["global_position"] for d in committed_batch.json()["decisions"]] == [3, 4]
    assert positions_after_commit == [2, 3, 4]
    assert rolled_back[0].global_position == 5
    assert pending_before_rollback
    assert batch_after_rollback.status_code == 200
    assert [d["global_position"] for d in batch_after_rollback.json()["decisions"]] == [5, 6, 7]
    assert all_positions == [1, 2, 3, 4, 5, 6, 7]
    assert rolled_back_order.status_code == 404


# -- database outage -----------------------------------------------------------------


def post_until_decided(client: httpx.Client, body: dict[str, Any], statuses: list[tuple[int, str | None]]) -> dict:
    """POST the same batch until it gets 200, recording each status and Retry-After header, and return the decision."""
    for _ in range(200):
        response = client.post("/v1/events", json={"events": [body]})
        statuses.append((response.status_code, response.headers.get("retry-after")))
        if response.status_code == 200:
            return response.json()["decisions"][0]
        time.sleep(0.02)
    pytest.fail(f"POST /v1/events for {body['work_order_id']} got no 200 in 200 attempts; last: {statuses[-1]}")


def test_terminated_backends_get_503_or_200(api, live_server, database_name):
    """Terminate the server's backends, one of them in the middle of a POST, then keep using the same server.

    The POST waits at a position counter held by a raw transaction, so the
    termination meets it inside its transaction. The holder runs the
    termination itself and so survives it.
    """
    url = live_server.settings.database_url
    clients = [api("dispatcher", f"d-{i}") for i in range(4)]
    dispatcher = clients[0]
    post_batch(dispatcher, [created("wo-0")])
    # Parallel reads leave several idle connections in the server's pool.
    run_together([lambda client=client: client.get("/v1/sync/changes") for client in clients])
    interrupted_body = created("wo-1")

    async def terminate_during_post() -> tuple[int, httpx.Response]:
        holder = await asyncpg.connect(url)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                async with holder.transaction():
                    await holder.execute("SELECT last_position FROM position_counter FOR UPDATE")
                    waiting = pool.submit(dispatcher.post, "/v1/events", json={"events": [interrupted_body]})
                    await asyncio.to_thread(wait_for_lock_waiters, url, database_name, 1)
                    terminated = await holder.fetchval(TERMINATE_BACKENDS, database_name)
                return terminated, waiting.result(timeout=10)
        finally:
            await holder.close()

    terminated, interrupted = asyncio.run(terminate_during_post())
    responses = []
    bodies = [created(f"wo-{index}") for index in range(2, 5)]
    for body in bodies:
        responses.append(dispatcher.post("/v1/events", json={"events": [body]}))
        responses.append(dispatcher.get("/v1/sync/changes"))
        responses.append(dispatcher.get("/v1/work-orders/wo-0"))
    failed = [response for response in responses if response.status_code != 200]
    statuses: list[tuple[int, str | None]] = []
    decisions = [post_until_decided(dispatcher, body, statuses) for body in [interrupted_body, *bodies]]

    assert terminated >= 1
    assert interrupted.status_code == 503
    assert interrupted.headers.get("retry-after") == "1"
    assert interrupted.json()["error"] == "service_unavailable"
    assert interrupted.json()["message"] == "the database is unavailable; retry the request"
    assert database_name not in interrupted.text
    assert {response.status_code for response in responses} <= {200, 503}
    assert {response.headers.get("retry-after") for response in failed} <= {"1"}
    assert {status for status, _ in statuses} <= {200, 503}
    assert {d["status"] for d in decisions} == {"ACCEPTED"}
    feed = all_changes(dispatcher)
    assert sorted(e["work_order_id"] for e in feed) == ["wo-0", "wo-1", "wo-2", "wo-3", "wo-4"]
    assert [e["global_position"] for e in feed] == [1, 2, 3, 4, 5]
    assert dispatcher.get("/ready").json() == {"status": "ready", "events": 5}


def test_terminations_under_load_never_500(api, live_server, database_name):
    url = live_server.settings.database_url
    stop = threading.Event()
    statuses: list[tuple[int, str | None]] = []
    decisions: list[dict] = []

    def write(subject: str) -> None:
        client = api("dispatcher", subject)
        index = 0
        while not stop.is_set():
            decisions.append(post_until_decided(client, created(f"{subject}-wo-{index}"), statuses))
            response = client.get("/v1/sync/changes", params={"limit": 50})
            statuses.append((response.status_code, response.headers.get("retry-after")))
            index += 1

    with ThreadPoolExecutor(max_workers=4) as pool:
        writers = [pool.submit(write, f"d-{i}") for i in range(4)]
        for _ in range(10):
            time.sleep(0.1)
            terminate_backends(url, database_name)
        stop.set()
        for writer in writers:
            writer.result(timeout=30)
    dispatcher = api("dispatcher", "d-check")
    feed = all_changes(dispatcher)
    events_per_order = fetch(url, "SELECT work_order_id, count(*) FROM events GROUP BY 1")
    decision_count = fetch(url, "SELECT count(*) FROM decisions")[0][0]

    assert {status for status, _ in statuses} <= {200, 503}
    assert {retry_after for status, retry_after in statuses if status == 503} <= {"1"}
    assert 503 in {status for status, _ in statuses}
    assert {d["status"] for d in decisions} == {"ACCEPTED"}
    assert [e["global_position"] for e in feed] == list(range(1, len(decisions) + 1))
    assert {e["event_id"] for e in feed} == {d["event_id"] for d in decisions}
    assert {row[1] for row in events_per_order} == {1}
    assert len(events_per_order) == len(decisions)
    assert decision_count == len(decisions)


class DatabaseOutage:
    """Outage of one database: new connections are rejected and open ones terminated until `end` is called.

    The statements run on the admin database, so they work while the
    session database rejects connections.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.started = False

    def start(self) -> None:
        execute(POSTGRES_ADMIN_URL, f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        self.started = True
        self.terminate()

    def terminate(self) -> None:
        terminate_backends(POSTGRES_ADMIN_URL, self.database)

    def end(self) -> None:
        execute(POSTGRES_ADMIN_URL, f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage(live_server: LiveServer, database_name: str) -> Iterator[DatabaseOutage]:
    """A database outage that is always ended before the server and the test schema are torn down."""
    outage = DatabaseOutage(database_name)
    yield outage
    outage.end()


class OutageSleep:
    """SDK sleep that records each wait: the first wait terminates the backends again, the second ends the outage."""

    def __init__(self, outage: DatabaseOutage) -> None:
        self.outage = outage
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) == 1:
            self.outage.terminate()
        elif len(self.waits) == 2:
            self.outage.end()


def test_sdk_pushes_through_outage(api, live_server, outage, tmp_path):
    url = live_server.settings.database_url
    dispatcher = api("dispatcher", "d-1")
    orders = ["wo-1", "wo-2", "wo-3"]
    for work_order_id in orders:
        create_assigned(dispatcher, work_order_id, "e-17")
    tablets = Tablets(live_server, tmp_path)
    sleep = OutageSleep(outage)
    try:
        tablet: SyncClient = tablets.open(batch_size=4, sleep=sleep)
        tablet.sync()
        recorded = [entry for work_order_id in orders for entry in record_flow(tablet, work_order_id)]

        def start_outage_once(entry: OutboxEntry) -> None:
            if not outage.started:
                outage.start()

        # The outage starts once the first batch of 4 is decided, so the second push meets it.
        tablet.add_listener(start_outage_once)
        report = tablet.sync()
        outbox = tablet.outbox()
        pending = tablet.pending_count()
    finally:
        tablets.close_all()
    client_event_ids = [entry.event.client_event_id for entry in recorded]
    count_per_id = "SELECT client_event_id, count(*) FROM {table} WHERE client_event_id = ANY($1) GROUP BY 1"
    decisions_per_id = fetch(url, count_per_id.format(table="decisions"), client_event_ids)
    events_per_id = fetch(url, count_per_id.format(table="events"), client_event_ids)

    assert outage.started
    assert sleep.waits == [1.0, 1.0]
    assert report.pushed == 15
    assert report.accepted == 15
    assert report.replays == 0
    assert pending == 0
    assert [entry.decision.status.value if entry.decision else None for entry in outbox] == ["ACCEPTED"] * 15
    assert {row[0] for row in decisions_per_id} == set(client_event_ids)
    assert {row[1] for row in decisions_per_id} == {1}
    assert {row[0] for row in events_per_id} == set(client_event_ids)
    assert {row[1] for row in events_per_id} == {1}
    for work_order_id in orders:
        state = work_order(dispatcher, work_order_id)
        assert state["status"] == "completed"
        assert state["version"] == 2 + len(FIELD_FLOW)


# -- migrations and readiness ---------------------------------------------------------


async def test_empty_schema_needs_migration(empty_schema_url):
    store = PostgresStore(empty_schema_url)

    with pytest.raises(SchemaOutdated, match="run `csdp migrate`") as failure:
        await store.open()

    assert f"has schema version 0, this server needs {LATEST}" in str(failure.value)
    with pytest.raises(StoreUnavailable, match="is closed"):
        await store.count_events()



async def test_missing_database_unavailable(postgres_database):
    missing = f"{postgres_database.rpartition('/')[0]}/csdp_missing_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(missing)

    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL at") as failure:
        await store.open()

    assert isinstance(failure.value.__cause__, asyncpg.InvalidCatalogNameError)
    with pytest.raises(StoreUnavailable, match="is closed"):
        await store.count_events()

async def test_empty_migration_table_outdated(empty_schema_url):
    create_table = "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    await query(empty_schema_url, create_table)

    with pytest.raises(SchemaOutdated, match="run `csdp migrate`") as failure:
        await PostgresStore(empty_schema_url).open()

    assert f"has schema version 0, this server needs {LATEST}" in str(failure.value)


async def test_newer_schema_rejected(empty_schema_url):
    store = PostgresStore(empty_schema_url)
    await store.open(migrate=True)
    await store.close()
    await query(empty_schema_url, f"INSERT INTO schema_migrations (version, applied_at) VALUES ({LATEST + 1}, now())")

    with pytest.raises(SchemaOutdated, match="upgrade the server") as failure:
        await PostgresStore(empty_schema_url).open(migrate=True)

    assert f"has schema version {LATEST + 1}, newer than this server's {LATEST}" in str(failure.value)
    assert "csdp migrate" not in str(failure.value)


async def test_migrate_twice_is_idempotent(live_server, api):
    create_assigned(api("dispatcher", "d-1"), "wo-1", "e-17")
    store = PostgresStore(live_server.settings.database_url)
    await store.open()
    try:
        first = await store.migrate()
        second = await store.migrate()
        version = await store.schema_version()
        events = await store.count_events()
    finally:
        await store.close()
    url = live_server.settings.database_url
    applied = await query(url, "SELECT version FROM schema_migrations")
    counter = await query(url, "SELECT last_position FROM position_counter")

    assert first == []
    assert second == []
    assert version == LATEST
    assert events == 2
    assert [row[0] for row in applied] == list(range(1, LATEST + 1))
    assert [row[0] for row in counter] == [2]
    assert post_batch(api("dispatcher", "d-1"), [created("wo-2")])[0]["global_position"] == 3


async def test_parallel_migrations_apply_once(empty_schema_url):
    stores = [PostgresStore(empty_schema_url) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open(migrate=True) for store in stores))
        versions = [await store.schema_version() for store in stores]
        repeated = [await store.migrate() for store in stores]
    finally:
        for store in stores:
            await store.close()
    applied = await query(empty_schema_url, "SELECT version FROM schema_migrations")
    counter = await query(empty_schema_url, "SELECT last_position FROM position_counter")

    assert versions == [LATEST] * 4
    assert repeated == [[], [], [], []]
    assert [row[0] for row in applied] == list(range(1, LATEST + 1))
    assert [row[0] for row in counter] == [0]


def test_ready_reports_event_count(api):
    dispatcher = api("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")

    response = dispatcher.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "events": 2}



async def test_nul_value_is_invalid_value(empty_schema_url):
    store = PostgresStore(empty_schema_url)
    await store.open(migrate=True)
    try:
        with pytest.raises(InvalidValue, match="SQLSTATE 22021"):
            await store.get_work_order("wo\x001")
        assert await store.count_events() == 0
    finally:
        await store.close()


async def test_migrate_from_first_version(empty_schema_url):
    first_version = postgres_migrations()[0][1]
    connection = await asyncpg.connect(empty_schema_url)
    try:
        await connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        await connection.execute(first_version)
        await connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (1, now())")
        await connection.execute("INSERT INTO engineers (engineer_id, name) VALUES ('e-17', 'Ada')")
    finally:
        await connection.close()
    store = PostgresStore(empty_schema_url)

    with pytest.raises(SchemaOutdated, match=f"has schema version 1, this server needs {LATEST}"):
        await store.open()
    await store.open(migrate=True)
    try:
        page = await store.audit(AuditQuery())
        version = await store.schema_version()
    finally:
        await store.close()
    engineers = await query(empty_schema_url, "SELECT engineer_id FROM legacy_engineers")

    assert version == LATEST
    assert page.items == []
    assert [row[0] for row in engineers] == ["e-17"]
