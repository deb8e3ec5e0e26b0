"""SyncClient under network faults: lost responses, retries and backoff, restarts, in-flight recording.

The server is real. Faults a real server cannot produce on demand (a lost
response, a connection reset, a 503 burst, a 429) come from FaultTransport or
from respx routes that pass every other request through to the server.
"""

from __future__ import annotations

import random
import threading

import httpx
import pytest

from client_sdk import RequestRejected, ServerUnreachable, SyncError
from sdk_helpers import (
    ORDER,
    FaultTransport,
    SleepRecorder,
    record_flow,
    respx_faults,
    server_events,
    server_state,
    server_timeline,
)
from server.config import Settings
from shared_schema import WorkOrderStatus


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: what it tests does not depend on the store."""
    return "sqlite"


DEMO_EVENTS = 2  # created and assigned, loaded by the demo server for each order with an engineer


# -- lost responses ------------------------------------------------------------


def test_lost_response_replays_decisions(demo_server, tablets):
    transport = FaultTransport()
    sleep = SleepRecorder()
    client = tablets.open(transport=transport, sleep=sleep)
    seen = []
    client.add_listener(seen.append)
    client.sync()
    entries = record_flow(client)
    transport.lose_response("POST", "/v1/events")

    report = client.sync()

    posts = transport.requests("POST", "/v1/events")
    assert len(posts) == 2
    assert posts[1].body == posts[0].body
    assert len(sleep.waits) == 1
    assert report.accepted == 5
    assert report.replays == 5
    assert [entry.decision.replay for entry in client.outbox()] == [True] * 5
    assert [entry.decision.replay for entry in seen] == [True] * 5
    assert client.pending_count() == 0

    events = server_events(demo_server, ORDER)
    client_event_ids = [event.client_event_id for event in events]
    assert len(events) == DEMO_EVENTS + 5
    assert len(set(client_event_ids)) == len(client_event_ids)
    assert client_event_ids[DEMO_EVENTS:] == [entry.event.client_event_id for entry in entries]
    timeline = server_timeline(demo_server, ORDER)
    assert [entry.stream_version for entry in timeline] == [1, 2, 3, 4, 5, 6, 7]
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_lost_response_settled_by_pull(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, max_attempts=1)
    client.sync()
    record_flow(client)
    transport.lose_response("POST", "/v1/events")

    with pytest.raises(ServerUnreachable):
        client.sync()

    # The server committed the batch, but the device still keeps the events pending.
    assert client.pending_count() == 5
    assert client.work_order(ORDER).version == 7
    assert "ServerUnreachable" in client.last_error
    client.close()

    # The process restarts: a new client on the same file pulls before it pushes.
    restarted_transport = FaultTransport()
    restarted = tablets.open(transport=restarted_transport)
    seen = []
    restarted.add_listener(seen.append)
    pulled = restarted.pull()

    assert pulled == 5
    assert restarted_transport.requests("POST", "/v1/events") == []
    assert restarted.pending_count() == 0
    assert [entry.status for entry in restarted.outbox()] == ["ACCEPTED"] * 5
    assert [entry.decision.stream_version for entry in restarted.outbox()] == [3, 4, 5, 6, 7]
    assert len(seen) == 5
    assert restarted.work_order(ORDER).version == 7
    assert restarted.work_order(ORDER) == server_state(demo_server, ORDER)

    report = restarted.sync()
    assert report.pushed == 0
    assert len(server_events(demo_server, ORDER)) == DEMO_EVENTS + 5


def test_lost_response_replayed_after_restart(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, max_attempts=1)
    client.sync()
    record_flow(client)
    transport.lose_response("POST", "/v1/events")
    with pytest.raises(ServerUnreachable):
        client.sync()
    client.close()

    restarted = tablets.open()
    report = restarted.sync()

    assert report.pushed == 5
    assert report.replays == 5
    assert restarted.pending_count() == 0
    assert len(server_events(demo_server, ORDER)) == DEMO_EVENTS + 5
    assert restarted.work_order(ORDER) == server_state(demo_server, ORDER)


# -- retries and backoff -------------------------------------------------------


def test_connection_errors_retried(demo_server, tablets):
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep)
    refused = httpx.ConnectError("connection refused")

    with respx_faults(demo_server, "GET", "/v1/sync/changes", refused, refused) as route:
        report = client.sync()

    assert route.call_count == 3
    assert len(sleep.waits) == 2
    assert report.pulled == 1
    assert client.last_error is None


def test_connection_reset_retried(demo_server, tablets):
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep)
    client.sync()
    record_flow(client)
    reset = httpx.ReadError("connection reset by peer")

    with respx_faults(demo_server, "POST", "/v1/events", reset) as route:
        report = client.sync()

    assert route.call_count == 2
    assert len(sleep.waits) == 1
    assert report.accepted == 5
    assert report.replays == 0


def test_503_burst_backoff_grows(demo_server, tablets, monkeypatch):
    # Take the top of each jitter window so the waits are exact.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep, initial_backoff=0.2, max_backoff=30.0)
    client.sync()
    record_flow(client)
    burst = [httpx.Response(503)] * 4

    with respx_faults(demo_server, "POST", "/v1/events", *burst) as route:
        report = client.sync()

    assert route.call_count == 5
    assert sleep.waits == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert report.accepted == 5


def test_backoff_jitter_within_window(demo_server, tablets, monkeypatch):
    windows: list[tuple[float, float]] = []
    real_uniform = random.uniform

    def spy_uniform(low: float, high: float) -> float:
        windows.append((low, high))
        return real_uniform(low, high)

    monkeypatch.setattr(random, "uniform", spy_uniform)
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep, initial_backoff=0.2, max_backoff=2.0, max_attempts=8)
    burst = [httpx.Response(503)] * 7

    with respx_faults(demo_server, "GET", "/v1/sync/changes", *burst):
        client.sync()

    assert [low for low, _ in windows] == [0] * 7
    assert [high for _, high in windows] == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    assert len(sleep.waits) == 7
    for wait, (low, high) in zip(sleep.waits, windows):
        assert low <= wait <= high


def test_429_waits_retry_after(demo_server, tablets):
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep)
    client.sync()
    record_flow(client)
    throttled = httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "rate_limited"})

    with respx_faults(demo_server, "POST", "/v1/events", throttled) as route:
        report = client.sync()

    assert route.call_count == 2
    assert sleep.waits == [2.0]
    assert report.accepted == 5


def test_retry_after_capped_by_max_backoff(demo_server, tablets):
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep, max_backoff=5.0)
    throttled = httpx.Response(429, headers={"Retry-After": "3600"})

    with respx_faults(demo_server, "GET", "/v1/sync/changes", throttled):
        client.sync()

    assert sleep.waits == [5.0]


def test_422_not_retried(demo_server, tablets):
    transport = FaultTransport()
    sleep = SleepRecorder()
    client = tablets.open(transport=transport, sleep=sleep)
    client.store.set_meta("cursor", "not-a-number")

    with pytest.raises(RequestRejected) as caught:
        client.sync()

    assert caught.value.status_code == 422
    assert caught.value.body["field"] == "since"
    assert len(transport.sent) == 1
    assert sleep.waits == []
    assert "422" in client.last_error


def test_unreachable_keeps_events_pending(demo_server, tablets):
    sleep = SleepRecorder()
    client = tablets.open(sleep=sleep, max_attempts=3)
    client.sync()
    record_flow(client)
    refused = httpx.ConnectError("connection refused")

    with respx_faults(demo_server, "POST", "/v1/events", refused, refused, refused) as route:
        with pytest.raises(ServerUnreachable, match="after 3 attempts"):
            client.sync()

    assert route.call_count == 3
    assert len(sleep.waits) == 2
    assert client.pending_count() == 5
    assert client.last_error.startswith("ServerUnreachable")
    assert client.work_order(ORDER).status is WorkOrderStatus.COMPLETED
    assert len(server_events(demo_server, ORDER)) == DEMO_EVENTS

    report = client.sync()

    assert report.accepted == 5
    assert client.pending_count() == 0
    assert client.last_error is None
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_503_forever_raises_unreachable(demo_server, tablets):
    client = tablets.open(max_attempts=4)
    burst = [httpx.Response(503)] * 4

    with respx_faults(demo_server, "GET", "/v1/sync/changes", *burst) as route:
        with pytest.raises(ServerUnreachable, match="HTTP 503"):
            client.sync()

    assert route.call_count == 4


def test_pull_failure_keeps_local_state(demo_server, tablets):
    client = tablets.open(max_attempts=2)
    client.sync()
    record_flow(client)
    refused = httpx.ConnectError("connection refused")

    with respx_faults(demo_server, "GET", "/v1/sync/changes", refused, refused):
        with pytest.raises(ServerUnreachable):
            client.sync()

    # Only the pull failed after an accepted push, so the view keeps the pushed work.
    assert client.pending_count() == 0
    assert client.work_order(ORDER).status is WorkOrderStatus.COMPLETED
    assert client.work_order(ORDER).version == 7
    client.sync()
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_html_body_raises_sync_error(demo_server, tablets):
    client = tablets.open()
    portal = httpx.Response(200, text="<html>Sign in to the guest network</html>", headers={"Content-Type": "text/html"})

    with respx_faults(demo_server, "GET", "/v1/sync/changes", portal) as route:
        with pytest.raises(SyncError, match="not a valid sync response"):
            client.sync()

    assert route.call_count == 1
    assert "text/html" in client.last_error
    assert client.sync().pulled == 1


class TestSmallBatchLimit:
    """A server that accepts at most two events per request."""

    @pytest.fixture
    def settings(self, tmp_path):
        return Settings(var_dir=tmp_path / "var", max_batch_events=2)

    def test_oversized_batch_split(self, demo_server, tablets):
        transport = FaultTransport()
        sleep = SleepRecorder()
        client = tablets.open(transport=transport, sleep=sleep, batch_size=3)
        client.sync()
        record_flow(client, event_types=("accepted", "travel_started", "arrived"))

        report = client.sync()

        # The batch of 3 gets 413; the SDK halves it to 1 and sends the events one by one, without waiting.
        assert len(transport.requests("POST", "/v1/events")) == 4
        assert sleep.waits == []
        assert report.accepted == 3
        assert report.rejected_locally == 0
        assert client.pending_count() == 0


# -- recording while a push is in flight ----------------------------------------


def test_record_during_push_sent_next(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport)
    client.sync()
    first = client.record(ORDER, "accepted")
    during = {}

    def record_in_flight(request: httpx.Request) -> None:
        during["entry"] = client.record(ORDER, "travel_started")
        during["pending"] = client.pending_count()

    transport.before_forward("POST", "/v1/events", record_in_flight)

    report = client.sync()

    posts = transport.requests("POST", "/v1/events")
    assert during["pending"] == 2
    assert posts[0].client_event_ids() == [first.event.client_event_id]
    assert posts[1].client_event_ids() == [during["entry"].event.client_event_id]
    assert report.accepted == 2
    assert client.pending_count() == 0
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_record_during_failed_push_kept(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, max_attempts=1)
    client.sync()
    first = client.record(ORDER, "accepted")
    during = {}

    def record_in_flight(request: httpx.Request) -> None:
        # The app records from its own thread while the sync thread waits on the network.
        worker = threading.Thread(target=lambda: during.update(entry=client.record(ORDER, "travel_started")))
        worker.start()
        worker.join(timeout=10)

    transport.before_forward("POST", "/v1/events", record_in_flight)
    transport.lose_response("POST", "/v1/events")
    with pytest.raises(ServerUnreachable):
        client.sync()

    assert [entry.event for entry in client.pending()] == [first.event, during["entry"].event]
    report = client.sync()
    assert report.accepted == 2
    assert report.replays == 1
    assert len(server_events(demo_server, ORDER)) == DEMO_EVENTS + 2


# -- application callbacks -----------------------------------------------------


def test_failing_listener_does_not_stop_sync(demo_server, tablets):
    client = tablets.open()
    calls = []

    def broken_listener(entry) -> None:
        calls.append(entry)
        raise RuntimeError("the app's callback failed")

    client.add_listener(broken_listener)
    client.sync()
    record_flow(client)

    report = client.sync()

    assert len(calls) == 5
    assert report.accepted == 5
    assert client.pending_count() == 0
    assert client.last_error is None
