"""GET /v1/stream and /v1/stream/ws against a real server: delivery, resume, scope, filters and bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
import websockets.sync.client as ws_client
from api_helpers import assigned, create_assigned, created, event, post_batch
from conftest import LiveServer, free_port, start_server, stop_server
from live_helpers import SseReader, bearer
from websockets.exceptions import ConnectionClosed, InvalidStatus

from client_sdk.live import StreamMessage
from server.app import create_app
from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Role


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    """A server whose live stream sends heartbeats every 0.3 s."""
    fast = dataclasses.replace(settings, live_heartbeat_seconds=0.3)
    server, thread, base_url = start_server(fast)
    try:
        yield LiveServer(base_url=base_url, settings=fast)
    finally:
        stop_server(server, thread)


def office(live: LiveServer) -> httpx.Client:
    return live.client("dispatcher", "d-1")


def note(work_order_id: str, base_version: int, text: str = "checked the coolant") -> dict:
    return event(work_order_id, "note_added", base_version, {"text": text})


def test_stream_sends_accepted_event_with_position_id(live):
    with office(live) as http, SseReader(live.base_url, headers=bearer(live.token("dispatcher", "d-1"))) as reader:
        decisions = post_batch(http, [created("wo-1")])

        change = reader.changes(1)[0]

    assert reader.status_code == 200
    assert change["kind"] == "change"
    assert change["position"] == decisions[0]["global_position"]
    assert change["work_order_id"] == "wo-1"
    assert change["type"] == "created"
    assert change["revoked"] is False
    assert change["event"]["client_event_id"] == decisions[0]["client_event_id"]
    assert change["work_order"]["status"] == "new"


def test_stream_starts_at_end_without_position(live):
    with office(live) as http:
        post_batch(http, [created("wo-old")])
        with SseReader(live.base_url, headers=bearer(live.token("dispatcher", "d-1"))) as reader:
            post_batch(http, [created("wo-new")])

            change = reader.changes(1)[0]

    assert change["work_order_id"] == "wo-new"


def test_stream_resume_has_no_loss_or_duplicate(live):
    token = live.token("dispatcher", "d-1")
    with office(live) as http:
        with SseReader(live.base_url, headers=bearer(token), params={"since": 0}) as first:
            for index in range(5):
                post_batch(http, [created(f"wo-{index}")])
            seen = first.changes(3)
        # More events are accepted while no stream is open.
        post_batch(http, [created(f"wo-{index}") for index in range(5, 12)])
        last_id = str(seen[-1]["position"])
        with SseReader(live.base_url, headers={**bearer(token), "Last-Event-ID": last_id}) as second:
            rest = second.changes(9)
            post_batch(http, [created("wo-live")])
            rest += second.changes(1)

    positions = [change["position"] for change in seen + rest]
    assert positions == list(range(1, 14))
    assert rest[-1]["work_order_id"] == "wo-live"


def test_last_event_id_wins_over_since(live):
    token = live.token("dispatcher", "d-1")
    with office(live) as http:
        post_batch(http, [created(f"wo-{index}") for index in range(4)])
        with SseReader(live.base_url, headers={**bearer(token), "Last-Event-ID": "2"}, params={"since": 0}) as reader:
            changes = reader.changes(2)

    assert [change["position"] for change in changes] == [3, 4]


def test_heartbeat_comment_while_idle(live):
    with SseReader(live.base_url, headers=bearer(live.token("dispatcher", "d-1"))) as reader:
        item = reader.next(3, skip_comments=False)

    assert item == "heartbeat"


def test_stream_filters_by_work_order_and_kinds(live):
    token = live.token("dispatcher", "d-1")
    with office(live) as http:
        by_order = SseReader(live.base_url, headers=bearer(token), params={"work_order_id": "wo-b", "since": 0}).start()
        by_kind = SseReader(live.base_url, headers=bearer(token), params={"kinds": "assigned,note_added", "since": 0}).start()
        try:
            post_batch(http, [created("wo-a"), created("wo-b"), assigned("wo-a", "e-1"), note("wo-b", 1)])

            order_changes = by_order.changes(2)
            kind_changes = by_kind.changes(2)
        finally:
            by_order.close()
            by_kind.close()

    assert [(c["work_order_id"], c["type"]) for c in order_changes] == [("wo-b", "created"), ("wo-b", "note_added")]
    assert [(c["work_order_id"], c["type"]) for c in kind_changes] == [("wo-a", "assigned"), ("wo-b", "note_added")]


def test_office_filter_by_engineer(live):
    with office(live) as http:
        with SseReader(
            live.base_url, headers=bearer(live.token("dispatcher", "d-1")), params={"engineer_id": "e-2", "since": 0}
        ) as reader:
            create_assigned(http, "wo-1", "e-1")
            create_assigned(http, "wo-2", "e-2")

            change = reader.changes(1)[0]

    assert (change["work_order_id"], change["type"]) == ("wo-2", "assigned")


def test_engineer_receives_only_own_orders(live):
    engineer_token = live.token("engineer", "e-1")
    with office(live) as http, SseReader(live.base_url, headers=bearer(engineer_token), params={"since": 0}) as reader:
        create_assigned(http, "wo-other", "e-2")
        create_assigned(http, "wo-mine", "e-1")
        post_batch(http, [event("wo-mine", "reassigned", 2, {"engineer_id": "e-2"})])
        post_batch(http, [note("wo-mine", 3)])
        post_batch(http, [created("wo-marker"), assigned("wo-marker", "e-1")])

        changes = reader.changes(3)

    assert [(c["work_order_id"], c["type"]) for c in changes] == [
        ("wo-mine", "assigned"),
        ("wo-mine", "reassigned"),
        ("wo-marker", "assigned"),
    ]
    # The order was taken away, so its state is not sent, as in the pull feed.
    assert changes[1]["revoked"] is True
    assert changes[1]["work_order"] is None
    assert changes[2]["revoked"] is False
    assert changes[2]["work_order"]["engineer_id"] == "e-1"


def test_engineer_resume_sends_current_state(live):
    engineer_token = live.token("engineer", "e-1")
    with office(live) as http:
        create_assigned(http, "wo-mine", "e-1")
        post_batch(http, [event("wo-mine", "reassigned", 2, {"engineer_id": "e-2"})])
        create_assigned(http, "wo-kept", "e-1")
    with SseReader(live.base_url, headers=bearer(engineer_token), params={"since": 0}) as reader:
        changes = reader.changes(3)

    assert [(c["work_order_id"], c["type"], c["revoked"]) for c in changes] == [
        ("wo-mine", "assigned", True),
        ("wo-mine", "reassigned", True),
        ("wo-kept", "assigned", False),
    ]
    assert changes[2]["work_order"]["version"] == 2


def test_engineer_may_not_follow_other_engineer(live):
    reader = SseReader(
        live.base_url, headers=bearer(live.token("engineer", "e-1")), params={"engineer_id": "e-2"}
    ).start()
    reader.close()

    assert reader.status_code == 403
    assert reader.error_body["reason"] == "not_assigned"
    assert reader.error_body["field"] == "engineer_id"


@pytest.mark.parametrize("work_order_id", ["wo-other", "wo-missing"])
def test_engineer_may_not_follow_order_of_others(live, work_order_id):
    with office(live) as http:
        create_assigned(http, "wo-other", "e-2")
    reader = SseReader(
        live.base_url, headers=bearer(live.token("engineer", "e-1")), params={"work_order_id": work_order_id}
    ).start()
    reader.close()
    pull = httpx.get(
        f"{live.base_url}/v1/work-orders/{work_order_id}", headers=bearer(live.token("engineer", "e-1")), timeout=30
    )

    assert reader.status_code == 403
    assert reader.error_body["reason"] == "not_assigned"
    assert reader.error_body["field"] == "work_order_id"
    assert reader.error_body["value"] == work_order_id
    assert pull.status_code == 403
    assert pull.json()["reason"] == "not_assigned"


def test_engineer_follows_own_order(live):
    engineer_token = live.token("engineer", "e-1")
    with office(live) as http:
        create_assigned(http, "wo-mine", "e-1")
        with SseReader(
            live.base_url, headers=bearer(engineer_token), params={"work_order_id": "wo-mine"}
        ) as reader:
            post_batch(http, [note("wo-mine", 2)])
            change = reader.changes(1)[0]

    assert reader.status_code == 200
    assert change["work_order_id"] == "wo-mine"


def test_office_follows_any_order(live):
    with office(live) as http:
        create_assigned(http, "wo-other", "e-2")
        with SseReader(live.base_url, headers=bearer(live.token("manager", "m-1")), params={"work_order_id": "wo-other"}) as reader:
            post_batch(http, [note("wo-other", 2)])
            change = reader.changes(1)[0]

    assert change["work_order_id"] == "wo-other"


def test_websocket_engineer_order_of_others_closes(live):
    with office(live) as http:
        create_assigned(http, "wo-other", "e-2")
    token = live.token("engineer", "e-1")
    with ws_client.connect(ws_url(live, "work_order_id=wo-other"), additional_headers=bearer(token), open_timeout=10) as socket:
        error = json.loads(socket.recv(timeout=5))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)

    assert error["reason"] == "not_assigned"
    assert error["field"] == "work_order_id"
    assert closed.value.rcvd.code == 4403


def test_missing_token_message_names_query_parameter(live):
    reader = SseReader(live.base_url).start()
    reader.close()
    pull = httpx.get(live.base_url + "/v1/sync/changes", timeout=30)

    assert reader.status_code == 401
    assert "access_token" in reader.error_body["message"]
    assert "access_token" not in pull.json()["message"]


def test_access_token_query_parameter(live):
    with office(live) as http, SseReader(live.base_url, params={"access_token": live.token("dispatcher", "d-1")}) as reader:
        post_batch(http, [created("wo-1")])

        change = reader.changes(1)[0]

    assert reader.status_code == 200
    assert change["work_order_id"] == "wo-1"


@pytest.mark.parametrize(
    ("params", "headers", "status", "field"),
    [
        ({"since": "abc"}, {}, 422, "since"),
        ({"since": "-1"}, {}, 422, "since"),
        ({"since": "99"}, {}, 409, "since"),
        ({}, {"Last-Event-ID": "x7"}, 422, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "99"}, 409, "Last-Event-ID"),
        ({}, {"X-CSDP-Log-Epoch": "0123abcd"}, 409, "header X-CSDP-Log-Epoch"),
        ({}, {"X-CSDP-Log-Epoch": "not an epoch"}, 422, "header X-CSDP-Log-Epoch"),
        ({}, {"Last-Event-ID": "-3"}, 422, "Last-Event-ID"),
        ({"kinds": "created,teleported"}, {}, 422, "kinds"),
        ({"kinds": ""}, {}, 422, "kinds"),
        ({"kinds": "created,"}, {}, 422, "kinds"),
        ({"work_order_id": " "}, {}, 422, "work_order_id"),
        ({"colour": "red"}, {}, 422, "colour"),
        ({"since": ["1", "2"]}, {}, 422, "since"),
    ],
    ids=["since-text", "since-negative", "since-ahead", "last-id-text", "last-id-ahead", "epoch-other", "epoch-invalid",
         "last-id-negative",
         "kinds-unknown", "kinds-empty", "kinds-trailing-comma", "work-order-blank", "unknown-parameter", "since-twice"],
)
def test_stream_bad_input(live, params, headers, status, field):
    with office(live) as http:
        post_batch(http, [created("wo-1")])
    reader = SseReader(live.base_url, headers={**bearer(live.token("dispatcher", "d-1")), **headers}, params=params).start()
    reader.close()

    assert reader.status_code == status
    assert reader.error_body["field"] == field
    assert "value" in reader.error_body
    # A position past the head or another log's epoch gets the same reset signal as a pull.
    assert (reader.error_body.get("reason") == "reset_required") is (status == 409)
    if status == 409:
        assert len(reader.error_body["epoch"]) == 32


def test_stream_names_log_epoch(live):
    reader = SseReader(live.base_url, headers=bearer(live.token("dispatcher", "d-1"))).start()
    reader.close()
    with office(live) as http:
        pulled = http.get("/v1/sync/changes")

    assert reader.status_code == 200
    assert reader.response_headers is not None
    assert len(reader.response_headers["x-csdp-log-epoch"]) == 32
    assert reader.response_headers["x-csdp-log-epoch"] == pulled.headers["x-csdp-log-epoch"]


@pytest.mark.parametrize(
    ("headers", "params", "reason"),
    [
        ({}, {}, "missing_token"),
        ({"Authorization": "Bearer not-a-jwt"}, {}, "malformed_token"),
        ({}, {"access_token": "not-a-jwt"}, "malformed_token"),
    ],
    ids=["no-token", "bad-header", "bad-query-token"],
)
def test_stream_rejects_bad_token(live, headers, params, reason):
    reader = SseReader(live.base_url, headers=headers, params=params).start()
    reader.close()

    assert reader.status_code == 401
    assert reader.error_body["reason"] == reason


def test_access_token_parameter_only_on_stream(live):
    response = httpx.get(live.base_url + "/v1/sync/changes", params={"access_token": live.token("dispatcher", "d-1")})

    assert response.status_code == 401
    assert response.json()["reason"] == "missing_token"


def test_stream_ends_when_token_expires(live):
    token = mint_dev_token(
        live.settings,
        subject="d-1",
        role=Role.DISPATCHER,
        ttl=dt.timedelta(seconds=2),
    )
    with SseReader(live.base_url, headers=bearer(token)) as reader:
        items = []
        while True:
            item = reader.next(10)
            if item is None:
                break
            items.append(item)

    disconnects = [item for item in items if isinstance(item, StreamMessage) and item.event == "disconnect"]
    assert len(disconnects) == 1
    assert json.loads(disconnects[0].data)["reason"] == "token_expired"


# -- WebSocket ----------------------------------------------------------------


def ws_url(live: LiveServer, query: str) -> str:
    return live.base_url.replace("http://", "ws://") + "/v1/stream/ws?" + query


def test_websocket_sends_changes_and_resumes(live):
    token = live.token("dispatcher", "d-1")
    with office(live) as http:
        post_batch(http, [created(f"wo-{index}") for index in range(3)])
        with ws_client.connect(ws_url(live, "since=1"), additional_headers=bearer(token), open_timeout=10) as socket:
            backlog = [json.loads(socket.recv(timeout=5)) for _ in range(2)]
            post_batch(http, [created("wo-live")])
            live_change = json.loads(socket.recv(timeout=5))

    assert [change["position"] for change in backlog] == [2, 3]
    assert live_change["kind"] == "change"
    assert live_change["work_order_id"] == "wo-live"
    assert live_change["position"] == 4


def test_websocket_heartbeat_and_query_token(live):
    token = live.token("dispatcher", "d-1")
    with ws_client.connect(ws_url(live, f"access_token={token}"), open_timeout=10) as socket:
        message = json.loads(socket.recv(timeout=3))

    assert message == {"kind": "heartbeat", "position": 0}


def test_websocket_bad_input_closes_with_error(live):
    token = live.token("dispatcher", "d-1")
    with ws_client.connect(ws_url(live, "kinds=teleported"), additional_headers=bearer(token), open_timeout=10) as socket:
        error = json.loads(socket.recv(timeout=5))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)

    assert error["kind"] == "error"
    assert error["field"] == "kinds"
    assert error["value"] == "teleported"
    assert closed.value.rcvd.code == 4422


@pytest.mark.parametrize(("query", "headers", "field"), [("since=99", {}, "since"), ("", {"X-CSDP-Log-Epoch": "feed"}, "header X-CSDP-Log-Epoch")])
def test_websocket_reset_signal(live, query, headers, field):
    token = live.token("dispatcher", "d-1")
    with ws_client.connect(ws_url(live, query), additional_headers={**bearer(token), **headers}, open_timeout=10) as socket:
        error = json.loads(socket.recv(timeout=5))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)

    assert error["kind"] == "error"
    assert error["reason"] == "reset_required"
    assert error["field"] == field
    assert closed.value.rcvd.code == 4409


def test_websocket_without_token_is_refused(live):
    with pytest.raises(InvalidStatus) as refused:
        ws_client.connect(ws_url(live, "since=0"), open_timeout=10)

    assert refused.value.response.status_code == 403


def test_websocket_refusal_is_audited(live):
    with pytest.raises(InvalidStatus):
        ws_client.connect(ws_url(live, "access_token=not-a-jwt"), additional_headers={"X-Device-ID": "board-7"}, open_timeout=10)

    with live.client("manager", "m-1") as manager:
        assert wait_until(lambda: manager.get("/v1/audit", params={"outcome": "DENIED"}).json()["items"])
        entry = manager.get("/v1/audit", params={"outcome": "DENIED"}).json()["items"][0]

    assert (entry["method"], entry["path"]) == ("WEBSOCKET", "/v1/stream/ws")
    assert entry["status_code"] == 401
    assert entry["reason"] == "malformed_token"
    assert entry["device_id"] == "board-7"
    assert entry["subject_verified"] is False


# -- the hub's subscriber count -------------------------------------------------


@pytest.fixture
def app_server(settings: Settings) -> Iterator[tuple[object, str]]:
    """A server started here, so the test can read the hub of its app."""
    # Heartbeats are rare here, so a closed stream is noticed without a failed send.
    app = create_app(dataclasses.replace(settings, live_heartbeat_seconds=60))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, 15)
    try:
        yield app, f"http://127.0.0.1:{config.port}"
    finally:
        stop_server(server, thread)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_subscriber_count_follows_streams(app_server, settings):
    app, base_url = app_server
    hub = app.state.live_hub
    token = mint_dev_token(settings, subject="d-1", role=Role.DISPATCHER)
    url = base_url.replace("http://", "ws://") + "/v1/stream/ws"
    with SseReader(base_url, headers=bearer(token)) as second, ws_client.connect(url, additional_headers=bearer(token)) as socket:
        first = SseReader(base_url, headers=bearer(token)).start()
        assert wait_until(lambda: hub.subscriber_count == 3)
        first.close()
        assert wait_until(lambda: hub.subscriber_count == 2)
        socket.close()
        assert wait_until(lambda: hub.subscriber_count == 1)
        assert second.status_code == 200

    assert wait_until(lambda: hub.subscriber_count == 0)


def test_catch_up_and_live_span_many_pages(live):
    """More events than one read of the hub (500), both from the store and live."""
    token = live.token("dispatcher", "d-1")
    with office(live) as http:
        post_batch(http, [created("wo-1")])
        backlog = [note("wo-1", 1, f"reading {index}") for index in range(450)]
        post_batch(http, backlog)
        post_batch(http, [note("wo-1", 1, f"more {index}") for index in range(450)])
        with SseReader(live.base_url, headers=bearer(token), params={"since": 0, "kinds": "note_added"}) as reader:
            stored = reader.changes(900, timeout=20)
            live_batches = [[note("wo-1", 1, f"live {batch}-{index}") for index in range(400)] for batch in range(2)]
            for batch in live_batches:
                post_batch(http, batch)
            live_changes = reader.changes(800, timeout=20)

    assert [change["position"] for change in stored] == list(range(2, 902))
    assert [change["position"] for change in live_changes] == list(range(902, 1702))
    assert live_changes[-1]["event"]["payload"]["text"] == "live 1-399"
