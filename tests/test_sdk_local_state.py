"""SyncClient local state and status against a real server: rollbacks, own events in the feed, 403, headers."""

from __future__ import annotations

import httpx
import pytest

from client_sdk import Activity, EventState, Rollback, ServerUnreachable, SyncClient, SyncStatus, engineer_actor
from sdk_helpers import (
    ENGINEER,
    ORDER,
    FaultTransport,
    SleepRecorder,
    dispatch,
    record_flow,
    respx_faults,
    server_events,
    server_state,
)
from shared_schema import SCHEMA_VERSION, DecisionStatus, ReasonCode, WorkOrderStatus
from shared_schema.protocol import CURSOR_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION, SDK_HEADER


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: the SDK behaves the same whatever store the server uses."""
    return "sqlite"


# -- rollback ------------------------------------------------------------------


def test_rollback_with_reason(demo_server, tablets):
    client = tablets.open()
    client.sync()
    rollbacks: list[Rollback] = []
    client.on_rollback(rollbacks.append)
    entry = client.record(ORDER, "accepted")
    assert client.work_order(ORDER).status is WorkOrderStatus.ACCEPTED
    cancel = dispatch(demo_server, ORDER, "cancelled", {"reason": "customer fixed it"})
    assert cancel.status is DecisionStatus.ACCEPTED

    report = client.sync()

    assert report.rejected == 1
    [rollback] = rollbacks
    assert rollback.client_event_id == entry.event.client_event_id
    assert rollback.event_type == "accepted"
    assert rollback.reason_code == ReasonCode.CANCELLED_MEANWHILE.value
    assert "cancelled" in rollback.message
    assert rollback.server_status is WorkOrderStatus.CANCELLED
    assert rollback.server_version == cancel.work_order_version
    assert rollback.server_state == server_state(demo_server, ORDER)
    # The optimistic ACCEPTED is gone; the device shows the server's state.
    assert client.work_order(ORDER).status is WorkOrderStatus.CANCELLED
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)
    assert client.event_state(entry.event.client_event_id) is EventState.REJECTED


def test_rollback_held_for_review(demo_server, tablets):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    rollbacks: list[Rollback] = []
    client.on_rollback(rollbacks.append)
    logged = client.record(ORDER, "time_logged", {"minutes": 30})
    dispatch(demo_server, ORDER, "cancelled", {"reason": "contract ended"})

    client.sync()

    [rollback] = rollbacks
    assert rollback.client_event_id == logged.event.client_event_id
    assert rollback.reason_code == ReasonCode.WORK_ON_CANCELLED_ORDER.value
    assert client.event_state(logged.event.client_event_id) is EventState.NEEDS_REVIEW
    assert client.status().needs_review_count == 1


def test_failing_rollback_listener_ignored(demo_server, tablets):
    client = tablets.open()
    client.sync()

    def broken(rollback: Rollback) -> None:
        raise RuntimeError("the app's handler failed")

    seen: list[Rollback] = []
    client.on_rollback(broken)
    client.on_rollback(seen.append)
    client.record(ORDER, "completed")

    report = client.sync()

    assert report.rejected == 1
    assert [rollback.reason_code for rollback in seen] == [ReasonCode.INVALID_TRANSITION.value]
    assert client.last_error is None


# -- own events coming back in the feed --------------------------------------------


def test_pulled_own_event_applied_once(demo_server, tablets):
    client = tablets.open()
    client.sync()
    decided = []
    client.add_listener(decided.append)
    entries = record_flow(client, event_types=("accepted", "travel_started", "arrived"))
    client.push()
    assert client.work_order(ORDER).version == 5
    # Another actor's event lands after the device's own ones.
    foreign = dispatch(demo_server, ORDER, "priority_changed", {"priority": "P2"})
    assert foreign.work_order_version == 6

    pulled = client.pull()

    assert pulled == 4
    local = client.work_order(ORDER)
    assert local.version == 6
    assert local.status is WorkOrderStatus.ON_SITE
    assert local == server_state(demo_server, ORDER)
    assert len(decided) == 3
    states = client.event_states()
    assert [states[entry.event.client_event_id] for entry in entries] == [EventState.CONFIRMED] * 3


def test_pulled_own_event_after_lost_response(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, max_attempts=1)
    client.sync()
    decided = []
    client.add_listener(decided.append)
    entries = record_flow(client, event_types=("accepted", "travel_started"))
    transport.lose_response("POST", "/v1/events")
    with pytest.raises(ServerUnreachable):
        client.push()
    assert client.pending_count() == 2

    client.pull()

    assert client.pending_count() == 0
    assert [entry.status for entry in client.outbox()] == ["ACCEPTED", "ACCEPTED"]
    assert sorted(entry.event.client_event_id for entry in decided) == sorted(
        entry.event.client_event_id for entry in entries
    )
    assert client.work_order(ORDER).version == 4
    report = client.sync()
    assert report.pushed == 0
    assert len(transport.requests("POST", "/v1/events")) == 1
    assert len(server_events(demo_server, ORDER)) == 4


# -- status ----------------------------------------------------------------------


def test_event_state_moves_to_confirmed(tablets):
    client = tablets.open()
    client.sync()
    entry = client.record(ORDER, "accepted")
    event_id = entry.event.client_event_id
    assert client.event_state(event_id) is EventState.PENDING

    client.push()
    assert client.event_state(event_id) is EventState.ACCEPTED

    client.pull()
    assert client.event_state(event_id) is EventState.CONFIRMED


def test_event_state_unknown_id(tablets):
    import uuid

    client = tablets.open()

    assert client.event_state(uuid.uuid4()) is None


def test_status_counts_and_times(tablets):
    client = tablets.open()
    statuses: list[SyncStatus] = []
    client.on_status(statuses.append)
    assert client.status().last_successful_sync is None
    client.sync()
    client.record(ORDER, "accepted")
    client.record(ORDER, "completed")

    before = client.status()
    client.sync()
    after = client.status()

    assert before.pending_count == 2
    assert before.activity is Activity.IDLE
    assert after.pending_count == 0
    assert after.rejected_count == 1
    assert after.last_error is None
    assert after.last_successful_sync is not None
    assert after.last_successful_sync > (statuses[0].last_successful_sync or "")
    activities = [status.activity for status in statuses]
    assert Activity.SYNCING in activities
    assert activities[-1] is Activity.IDLE


def test_status_offline_keeps_events(tmp_path):
    sleep = SleepRecorder()
    # Port 9 (discard) on loopback has no listener, so every connection is refused.
    with SyncClient(
        tmp_path / "tablet.sqlite",
        "http://127.0.0.1:9",
        "token",
        device_id="tablet-e-17",
        actor=engineer_actor(ENGINEER),
        max_attempts=2,
        sleep=sleep,
    ) as client:
        client.record(ORDER, "accepted")
        with pytest.raises(ServerUnreachable):
            client.sync()
        status = client.status()

    assert status.activity is Activity.OFFLINE
    assert status.pending_count == 1
    assert "ServerUnreachable" in status.last_error
    assert status.last_successful_sync is None
    assert len(sleep.waits) == 1


def test_failing_status_listener_ignored(tablets):
    client = tablets.open()

    def broken(status: SyncStatus) -> None:
        raise RuntimeError("the status bar failed")

    client.on_status(broken)
    entry = client.record(ORDER, "accepted")

    assert client.pending_count() == 1
    assert entry.pending


# -- 403 ---------------------------------------------------------------------------


def test_403_marks_batch_rejected(demo_server, tablets):
    client = tablets.open(batch_size=2)
    client.sync()
    rollbacks: list[Rollback] = []
    client.on_rollback(rollbacks.append)
    entries = record_flow(client, event_types=("accepted", "travel_started", "arrived"))
    forbidden = httpx.Response(
        403,
        json={"error": "forbidden", "reason": "role_not_permitted", "message": "role engineer may not call this"},
    )

    with respx_faults(demo_server, "POST", "/v1/events", forbidden) as route:
        report = client.sync()

    assert route.call_count == 2
    assert report.rejected_locally == 2
    assert report.rejected == 1
    first, second, third = (client.event_state(entry.event.client_event_id) for entry in entries)
    assert (first, second) == (EventState.REJECTED_LOCALLY, EventState.REJECTED_LOCALLY)
    # The third event went in the next batch and reached the server, which rejects it because the two before it never applied.
    assert third is EventState.REJECTED
    rejected = client.not_applied()
    assert rejected[0].local_rejection.reason == "role_not_permitted"
    assert rejected[0].local_rejection.http_status == 403
    assert [rollback.reason_code for rollback in rollbacks[:2]] == ["role_not_permitted"] * 2
    assert rollbacks[0].message == "role engineer may not call this"
    assert client.pending_count() == 0
    assert client.status().rejected_count == 3


def test_403_on_pull_raises(demo_server, tablets):
    from client_sdk import RequestRejected

    client = tablets.open()
    client.record(ORDER, "accepted")
    forbidden = httpx.Response(403, json={"error": "forbidden", "reason": "role_not_permitted", "message": "no"})

    with respx_faults(demo_server, "GET", "/v1/sync/changes", forbidden), pytest.raises(RequestRejected):
        client.sync()

    # The push before the pull went through; the pull's 403 rejects nothing locally.
    assert client.status().activity is Activity.FAILED
    assert client.status().rejected_count == 0
    assert "403" in client.last_error


# -- versions on the wire ------------------------------------------------------------


def test_requests_carry_versions(demo_server, tablets):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")

    with respx_faults(demo_server, "POST", "/v1/events") as route:
        client.sync()

    request = route.calls[0].request
    assert request.headers[PROTOCOL_HEADER] == str(PROTOCOL_VERSION)
    assert request.headers[SDK_HEADER].startswith("csdp-python/")
    assert request.headers[CURSOR_HEADER] == "2"
    body = httpx.Response(200, content=request.content).json()
    assert body["events"][0]["schema_version"] == SCHEMA_VERSION


# -- tokens -------------------------------------------------------------------------


def test_401_calls_refresher_once(demo_server, tablets):
    valid = demo_server.token("engineer", ENGINEER)
    cached = {"token": "expired-token"}
    refreshed: list[str] = []

    def refresh() -> str:
        refreshed.append(valid)
        cached["token"] = valid
        return valid

    transport = FaultTransport()
    client = tablets.open(transport=transport, token_provider=lambda: cached["token"], token_refresher=refresh)
    client.record(ORDER, "accepted")

    report = client.sync()

    assert report.accepted == 1
    assert refreshed == [valid]
    assert [sent.authorization for sent in transport.sent] == [
        "Bearer expired-token",
        f"Bearer {valid}",
        f"Bearer {valid}",
    ]


def test_401_after_refresh_is_final(demo_server, tablets):
    from client_sdk import RequestRejected

    calls: list[int] = []

    def refresh() -> str:
        calls.append(1)
        return "still-invalid"

    transport = FaultTransport()
    client = tablets.open(transport=transport, token_provider=lambda: "expired-token", token_refresher=refresh)
    client.record(ORDER, "accepted")

    with pytest.raises(RequestRejected) as caught:
        client.sync()

    assert caught.value.status_code == 401
    assert len(calls) == 1
    assert len(transport.sent) == 2
    assert client.pending_count() == 1
