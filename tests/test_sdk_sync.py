"""SyncClient against a real server: durable recording, the engineer flow, conflicts, tokens."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing

import httpx
import pytest

from client_sdk import OutboxEntry, RequestRejected, SyncClient, engineer_actor
from sdk_helpers import (
    ENGINEER,
    FIELD_FLOW,
    ORDER,
    FaultTransport,
    SleepRecorder,
    dispatch,
    record_flow,
    server_events,
    server_state,
    server_timeline,
)
from shared_schema import DecisionStatus, ReasonCode, WorkOrderStatus


# -- recording ---------------------------------------------------------------


def test_record_durable_before_return(tablets):
    client = tablets.open()
    client.sync()

    entry = client.record(ORDER, "accepted")

    # Another connection reads the file while the client is still open, as after a crash.
    with closing(sqlite3.connect(client.store.path)) as raw:
        rows = raw.execute("SELECT client_event_id, status FROM outbox").fetchall()
    assert rows == [(str(entry.event.client_event_id), "PENDING")]
    reopened = tablets.open()
    assert reopened.pending_count() == 1
    assert reopened.pending()[0].event == entry.event


def test_record_applies_locally_at_once(tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport)
    client.sync()
    requests_before = len(transport.sent)

    entry = client.record(ORDER, "accepted")

    local = client.work_order(ORDER)
    assert entry.pending
    assert entry.event.base_version == 2
    assert local.status is WorkOrderStatus.ACCEPTED
    assert local.version == 3
    assert client.store.confirmed(ORDER).version == 2
    assert len(transport.sent) == requests_before


def test_record_unknown_order_kept_pending(tablets):
    client = tablets.open()

    client.record("wo-9999", "accepted")

    assert client.work_order("wo-9999") is None
    assert client.pending_count() == 1
    report = client.sync()
    assert report.rejected == 1
    assert client.not_applied()[0].decision.reason_code is ReasonCode.UNKNOWN_WORK_ORDER


@pytest.mark.parametrize(
    ("work_order_id", "event_type", "occurred_at"),
    [
        ("", "accepted", None),
        ("w" * 101, "accepted", None),
        (ORDER, "", None),
        (ORDER, "x" * 101, None),
        (ORDER, "accepted", dt.datetime(2026, 1, 5, 9, 30)),
    ],
    ids=["empty-order-id", "long-order-id", "empty-type", "long-type", "naive-occurred-at"],
)
def test_record_invalid_envelope_raises(tablets, work_order_id, event_type, occurred_at):
    client = tablets.open()

    with pytest.raises(ValueError, match="invalid event"):
        client.record(work_order_id, event_type, occurred_at=occurred_at)

    assert client.pending_count() == 0
    assert client.outbox() == []
    assert client.sync().pushed == 0


def test_record_unserialisable_payload_raises(tablets):
    client = tablets.open()

    with pytest.raises(TypeError):
        client.record(ORDER, "note_added", {"text": object()})

    assert client.pending_count() == 0


# -- engineer flow -------------------------------------------------------------


def test_engineer_flow_all_accepted(demo_server, tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport)

    first = client.sync()
    # The engineer's feed starts at the assignment, because the order was created before it was theirs.
    assert first.pulled == 1
    assert list(client.my_work_orders()) == [ORDER]
    assert client.work_order(ORDER).status is WorkOrderStatus.ASSIGNED

    requests_before = len(transport.sent)
    record_flow(client)
    assert len(transport.sent) == requests_before
    assert client.pending_count() == len(FIELD_FLOW)
    assert client.work_order(ORDER).status is WorkOrderStatus.COMPLETED
    assert client.work_order(ORDER).version == 7

    report = client.sync()

    assert report.pushed == 5
    assert report.accepted == 5
    assert report.rejected == 0
    assert report.needs_review == 0
    assert report.replays == 0
    assert client.pending_count() == 0
    assert [entry.status for entry in client.outbox()] == ["ACCEPTED"] * 5
    assert [entry.decision.stream_version for entry in client.outbox()] == [3, 4, 5, 6, 7]
    assert client.not_applied() == []
    assert client.work_order(ORDER) == server_state(demo_server, ORDER, role="engineer", subject=ENGINEER)
    assert client.work_order(ORDER) == client.store.confirmed(ORDER)
    assert client.last_error is None
    assert client.last_successful_sync is not None


def test_sync_pulls_only_own_orders(tablets):
    alex = tablets.open("alex", engineer="e-17")
    marta = tablets.open("marta", engineer="e-21")

    alex.sync()
    marta.sync()

    assert list(alex.work_orders()) == ["wo-1001"]
    assert list(marta.work_orders()) == ["wo-1002"]


def test_own_events_pulled_once(demo_server, tablets):
    client = tablets.open()
    seen: list[OutboxEntry] = []
    client.add_listener(seen.append)
    client.sync()
    record_flow(client)

    report = client.sync()

    # The pull returns the five accepted events, and the push has already settled their entries.
    assert report.pulled == 5
    assert len(seen) == 5
    assert client.work_order(ORDER).version == server_state(demo_server, ORDER).version
    again = client.sync()
    assert again.pushed == 0
    assert again.pulled == 0
    assert len(seen) == 5
    assert client.work_order(ORDER).version == 7


def test_push_without_pull_keeps_state(tablets):
    client = tablets.open()
    client.sync()
    record_flow(client, event_types=("accepted", "travel_started"))

    decisions = client.push()

    assert [decision.status for decision in decisions] == [DecisionStatus.ACCEPTED] * 2
    assert client.pending_count() == 0
    assert client.work_order(ORDER).status is WorkOrderStatus.EN_ROUTE
    assert client.work_order(ORDER).version == 4
    client.pull()
    assert client.work_order(ORDER).status is WorkOrderStatus.EN_ROUTE
    assert client.work_order(ORDER).version == 4


def test_push_splits_by_batch_size(tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, batch_size=2)
    client.sync()
    entries = record_flow(client)

    report = client.sync()

    posts = transport.requests("POST", "/v1/events")
    assert [len(post.client_event_ids()) for post in posts] == [2, 2, 1]
    sent_ids = [event_id for post in posts for event_id in post.client_event_ids()]
    assert sent_ids == [entry.event.client_event_id for entry in entries]
    assert report.accepted == 5


def test_pull_follows_cursor_pages(demo_server, tablets):
    first = tablets.open("first")
    first.sync()
    record_flow(first)
    first.sync()
    transport = FaultTransport()
    second = tablets.open("second", transport=transport, pull_page_size=2)

    report = second.sync()

    feed = server_events(demo_server, ORDER)
    assert report.pulled == 6
    assert len(transport.requests("GET", "/v1/sync/changes")) == 3
    assert second.cursor == str(feed[-1].global_position)
    assert second.work_order(ORDER) == server_state(demo_server, ORDER)


# -- decisions that were not applied -------------------------------------------


def test_invalid_transition_rejected(demo_server, tablets):
    client = tablets.open()
    seen: list[OutboxEntry] = []
    client.add_listener(seen.append)
    client.sync()

    client.record(ORDER, "completed")
    # The shared decide function rejects it locally too, so the view does not move.
    assert client.work_order(ORDER).status is WorkOrderStatus.ASSIGNED

    report = client.sync()

    assert report.rejected == 1
    assert client.pending_count() == 0
    [entry] = client.not_applied()
    assert entry.status == "REJECTED"
    assert entry.decision.reason_code is ReasonCode.INVALID_TRANSITION
    assert entry.decision.work_order_status is WorkOrderStatus.ASSIGNED
    assert [item.decision.reason_code for item in seen] == [ReasonCode.INVALID_TRANSITION]
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_invalid_payload_not_recorded(tablets):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")

    with pytest.raises(ValueError, match=r"\$\.payload\.reason"):
        client.record(ORDER, "hold_started", {"reason": "lunch"})
    with pytest.raises(ValueError, match="unknown event type 'unknown_kind'"):
        client.record(ORDER, "unknown_kind")
    report = client.sync()

    assert report.pushed == 1
    assert client.not_applied() == []


def test_cancel_conflict_needs_review(demo_server, tablets):
    client = tablets.open()
    seen: list[OutboxEntry] = []
    client.add_listener(seen.append)
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    record_flow(client, event_types=("travel_started", "arrived"))

    cancel = dispatch(demo_server, ORDER, "cancelled", {"reason": "customer fixed it"})
    assert cancel.status is DecisionStatus.ACCEPTED
    report = client.sync()

    assert report.needs_review == 2
    assert client.pending_count() == 0
    not_applied = client.not_applied()
    assert [entry.status for entry in not_applied] == ["NEEDS_REVIEW", "NEEDS_REVIEW"]
    assert {entry.decision.reason_code for entry in not_applied} == {ReasonCode.WORK_ON_CANCELLED_ORDER}
    assert {entry.decision.work_order_status for entry in not_applied} == {WorkOrderStatus.CANCELLED}
    review_calls = [entry for entry in seen if entry.status == "NEEDS_REVIEW"]
    assert [entry.event.type for entry in review_calls] == ["travel_started", "arrived"]
    assert review_calls[0].decision.reason_code is ReasonCode.WORK_ON_CANCELLED_ORDER
    assert review_calls[0].decision.work_order_status is WorkOrderStatus.CANCELLED
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)
    assert client.work_order(ORDER).status is WorkOrderStatus.CANCELLED


def test_cancel_rejects_stale_accept(demo_server, tablets):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")

    dispatch(demo_server, ORDER, "cancelled", {"reason": "duplicate order"})
    report = client.sync()

    assert report.rejected == 1
    [entry] = client.not_applied()
    assert entry.decision.reason_code is ReasonCode.CANCELLED_MEANWHILE
    assert entry.decision.work_order_status is WorkOrderStatus.CANCELLED
    assert client.work_order(ORDER) == server_state(demo_server, ORDER)


def test_reassign_conflict_needs_review(demo_server, tablets):
    client = tablets.open()
    seen: list[OutboxEntry] = []
    client.add_listener(seen.append)
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    record_flow(client, event_types=("travel_started", "arrived"))

    dispatch(demo_server, ORDER, "reassigned", {"engineer_id": "e-21", "reason": "closer to site"})
    report = client.sync()

    assert report.needs_review == 2
    assert client.pending_count() == 0
    reasons = {entry.decision.reason_code for entry in client.not_applied()}
    assert reasons == {ReasonCode.WORK_ON_REASSIGNED_ORDER}
    assert seen[-1].decision.reason_code is ReasonCode.WORK_ON_REASSIGNED_ORDER
    assert seen[-1].decision.work_order_status is WorkOrderStatus.ASSIGNED
    # The pull revokes the order, so the tablet drops its copy of the new assignee's order.
    assert client.work_order(ORDER) is None
    assert ORDER not in client.confirmed_work_orders()
    assert client.my_work_orders() == {}
    with demo_server.client("engineer", ENGINEER) as http:
        assert http.get(f"/v1/work-orders/{ORDER}").status_code == 403


def test_not_applied_survives_reopen(demo_server, tablets):
    client = tablets.open()
    client.sync()
    record_flow(client, event_types=("accepted", "travel_started"))
    dispatch(demo_server, ORDER, "cancelled", {"reason": "machine replaced"})
    client.sync()

    reopened = tablets.open()

    reasons = [entry.decision.reason_code for entry in reopened.not_applied()]
    assert reasons == [ReasonCode.CANCELLED_MEANWHILE, ReasonCode.WORK_ON_CANCELLED_ORDER]
    assert reopened.pending_count() == 0
    timeline_reasons = [entry.reason_code for entry in server_timeline(demo_server, ORDER)]
    assert timeline_reasons[-2:] == reasons


# -- tokens --------------------------------------------------------------------


def test_token_provider_called_per_request(demo_server, tablets):
    calls: list[int] = []

    def provide() -> str:
        calls.append(1)
        return demo_server.token("engineer", ENGINEER)

    transport = FaultTransport()
    client = tablets.open(transport=transport, token_provider=provide)
    client.sync()
    record_flow(client, event_types=("accepted",))
    client.sync()

    assert len(transport.sent) == 3
    assert len(calls) == 3


def test_token_refreshed_after_401(demo_server, tablets):
    valid = demo_server.token("engineer", ENGINEER)
    tokens = iter(["not-a-token", valid, valid])
    transport = FaultTransport()
    sleep = SleepRecorder()
    client = tablets.open(transport=transport, token_provider=lambda: next(tokens), sleep=sleep)

    report = client.sync()

    assert report.pulled == 1
    assert [sent.authorization for sent in transport.sent] == ["Bearer not-a-token", f"Bearer {valid}"]
    assert sleep.waits == []


def test_token_rejected_twice_raises(tablets):
    transport = FaultTransport()
    client = tablets.open(transport=transport, token_provider=lambda: "expired")
    client.record(ORDER, "accepted")

    with pytest.raises(RequestRejected) as caught:
        client.sync()

    assert caught.value.status_code == 401
    assert len(transport.sent) == 2
    assert client.pending_count() == 1
    assert "401" in client.last_error


# -- configuration -------------------------------------------------------------


def test_http_client_without_base_url(demo_server, tmp_path):
    transport = FaultTransport()
    with httpx.Client(transport=transport) as http, SyncClient(
        tmp_path / "tablet.sqlite",
        demo_server.base_url,
        demo_server.token("engineer", ENGINEER),
        device_id="tablet-e-17",
        actor=engineer_actor(ENGINEER),
        http=http,
        max_attempts=1,
    ) as client:
        report = client.sync()

    assert report.pulled == 1
    assert transport.sent[0].path == "/v1/sync/changes"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("batch_size", 0),
        ("pull_page_size", 0),
        ("max_attempts", 0),
        ("initial_backoff", -1.0),
        ("max_backoff", -1.0),
    ],
)
def test_constructor_invalid_option_raises(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        SyncClient(
            tmp_path / "tablet.sqlite",
            "http://127.0.0.1:9",
            "token",
            device_id="tablet-e-17",
            actor=engineer_actor(ENGINEER),
            **{option: value},
        )


def test_constructor_base_url_without_scheme(tmp_path):
    with pytest.raises(ValueError, match="base_url"):
        SyncClient(
            tmp_path / "tablet.sqlite",
            "127.0.0.1:8000",
            "token",
            device_id="tablet-e-17",
            actor=engineer_actor(ENGINEER),
        )
