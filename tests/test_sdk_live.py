"""The SDK's live subscription against a real server: a change on the server causes a pull."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from api_helpers import create_assigned, event, post_batch
from conftest import LiveServer, start_server, stop_server
from sdk_helpers import Tablets

from client_sdk import Activity
from client_sdk.live import LiveSubscription, StreamMessage, parse_sse
from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Role
from shared_schema.protocol import EPOCH_HEADER

ENGINEER = "e-17"


@pytest.fixture
def store_kind() -> str:
    """The subscription only reads the stream; the stream tests cover both stores."""
    return "sqlite"


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    fast = dataclasses.replace(settings, live_heartbeat_seconds=0.5)
    server, thread, base_url = start_server(fast)
    try:
        yield LiveServer(base_url=base_url, settings=fast)
    finally:
        stop_server(server, thread)


@pytest.fixture
def tablets(live, tmp_path) -> Iterator[Tablets]:
    factory = Tablets(live, tmp_path / "devices")
    yield factory
    factory.close_all()


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_change_on_server_causes_pull(live, tablets):
    tablet = tablets.open()
    pulled: list[int] = []
    with live.client("dispatcher", "d-1") as office, LiveSubscription(tablet, on_pull=pulled.append) as subscription:
        # The pull at the start has run, so the next pull comes from the stream.
        assert wait_until(lambda: subscription.pulls == 1)

        create_assigned(office, "wo-1", ENGINEER)
        assert wait_until(lambda: tablet.work_order("wo-1") is not None)
        post_batch(office, [event("wo-1", "priority_changed", 2, {"priority": "P1"})])
        assert wait_until(lambda: tablet.work_order("wo-1").priority.value == "P1")

    assert subscription.running is False
    # The start pull finds nothing; `created` has no assignee, so e-17 receives only the other two events.
    assert pulled == [0, 1, 1]
    assert tablet.cursor == "3"


def test_change_for_other_engineer_causes_no_pull(live, tablets):
    tablet = tablets.open()
    with live.client("dispatcher", "d-1") as office, LiveSubscription(tablet) as subscription:
        assert wait_until(lambda: subscription.pulls == 1)

        create_assigned(office, "wo-other", "e-21")
        create_assigned(office, "wo-mine", ENGINEER)
        assert wait_until(lambda: tablet.work_order("wo-mine") is not None)

    # One pull at the start and one for wo-mine; the stream never mentioned wo-other.
    assert subscription.pulls == 2
    assert tablet.work_order("wo-other") is None


def test_subscription_catches_up_on_start(live, tablets):
    tablet = tablets.open()
    with live.client("dispatcher", "d-1") as office:
        create_assigned(office, "wo-1", ENGINEER)

    with LiveSubscription(tablet) as subscription:
        assert wait_until(lambda: tablet.work_order("wo-1") is not None)

    assert subscription.pulls >= 1


def test_subscription_reconnects_with_new_token(live, tablets):
    issued: list[str] = []

    def short_token() -> str:
        issued.append("token")
        return mint_dev_token(live.settings, subject=ENGINEER, role=Role.ENGINEER, ttl=dt.timedelta(seconds=1))

    tablet = tablets.open(token_provider=short_token)
    with live.client("dispatcher", "d-1") as office, LiveSubscription(tablet, initial_backoff=0.1) as subscription:
        # The server ends each stream with token_expired; the subscription opens a new one.
        assert wait_until(lambda: subscription.connects >= 2, timeout=10)
        create_assigned(office, "wo-1", ENGINEER)
        assert wait_until(lambda: tablet.work_order("wo-1") is not None, timeout=10)

    assert len(issued) >= 2


def test_rejected_stream_stops_subscription(live, tablets):
    tablet = tablets.open(token_provider="not-a-jwt")
    subscription = LiveSubscription(tablet).start()
    try:
        assert wait_until(lambda: not subscription.running)
    finally:
        subscription.stop()

    assert "401" in subscription.last_error
    assert subscription.connects == 0
    # The client's status shows the app that the subscription stopped.
    status = tablet.status()
    assert status.activity is Activity.FAILED
    assert status.last_error is not None
    assert status.last_error.startswith("live subscription stopped: GET /v1/stream returned 401")


@pytest.mark.parametrize("stale", ["cursor", "epoch"])
def test_reset_signal_pulls_and_resumes(live, tablets, stale):
    """A stream refused with 409 reset_required runs one pull, which resets the tablet, and opens again."""
    with live.client("dispatcher", "d-1") as office:
        create_assigned(office, "wo-1", ENGINEER)
        tablet = tablets.open()
        tablet.sync()
        if stale == "cursor":
            tablet.store.set_meta("cursor", "99")
        else:
            tablet.store.set_meta("log_epoch", "0" * 32)
        epoch = office.get("/v1/sync/changes").headers[EPOCH_HEADER]

        with LiveSubscription(tablet) as subscription:
            assert wait_until(lambda: subscription.connects == 1)
            post_batch(office, [event("wo-1", "priority_changed", 2, {"priority": "P1"})])
            assert wait_until(lambda: tablet.work_order("wo-1").priority.value == "P1")
            assert subscription.running is True

    assert tablet.cursor == "3"
    assert tablet.log_epoch == epoch
    assert subscription.last_error is None
    assert tablet.status().last_error is None


def test_repeated_reset_signal_stops_subscription(live, tablets):
    refusals: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        refusals.append(request)
        return httpx.Response(409, json={"error": "reset_required", "reason": "reset_required", "head": "0"})

    tablet = tablets.open()
    http = httpx.Client(transport=httpx.MockTransport(refuse))
    subscription = LiveSubscription(tablet, http=http).start()
    try:
        assert wait_until(lambda: not subscription.running)
    finally:
        subscription.stop()
        http.close()

    # One reset pull between the two refusals, then no further attempt.
    assert len(refusals) == 2
    assert subscription.pulls == 1
    assert "the reset did not help" in subscription.last_error
    assert tablet.status().activity is Activity.FAILED
    assert "409" in tablet.status().last_error


def test_unreachable_server_is_retried(tablets, tmp_path):
    # Port 9 on loopback has no listener, so every connection is refused.
    dead = Tablets(dataclasses.replace(tablets.server, base_url="http://127.0.0.1:9"), tmp_path / "dead")
    tablet = dead.open()
    subscription = LiveSubscription(tablet, initial_backoff=0.05, max_backoff=0.1).start()
    try:
        time.sleep(0.5)
        assert subscription.running
    finally:
        subscription.stop()
        dead.close_all()

    assert "ConnectError" in subscription.last_error


@pytest.mark.parametrize(
    "options",
    [
        {"read_timeout": 0},
        {"read_timeout": 5},
        {"read_timeout": 29.9},
        {"read_timeout": 1, "heartbeat_seconds": 0.6},
        {"heartbeat_seconds": 0},
        {"heartbeat_seconds": 3601, "read_timeout": 10_000},
        {"initial_backoff": -1},
        {"initial_backoff": 5, "max_backoff": 1},
    ],
    ids=[
        "read-timeout-zero",
        "read-timeout-below-heartbeat",
        "read-timeout-below-two-heartbeats",
        "read-timeout-below-two-short-heartbeats",
        "heartbeat-zero",
        "heartbeat-above-maximum",
        "backoff-negative",
        "backoff-above-maximum",
    ],
)
def test_subscription_rejects_bad_options(tablets, options):
    with pytest.raises(ValueError):
        LiveSubscription(tablets.open(), **options)


def test_read_timeout_error_names_heartbeat(tablets):
    with pytest.raises(ValueError) as error:
        LiveSubscription(tablets.open(), read_timeout=5)

    assert "at least 30 s" in str(error.value)
    assert "heartbeat_seconds" in str(error.value)


@pytest.mark.parametrize(("read_timeout", "heartbeat_seconds"), [(30, 15.0), (1, 0.5), (0.2, 0.1)])
def test_read_timeout_of_two_heartbeats_accepted(tablets, read_timeout, heartbeat_seconds):
    subscription = LiveSubscription(tablets.open(), read_timeout=read_timeout, heartbeat_seconds=heartbeat_seconds)

    assert subscription.connects == 0


def test_subscription_start_twice(live, tablets):
    subscription = LiveSubscription(tablets.open()).start()
    try:
        with pytest.raises(RuntimeError):
            subscription.start()
    finally:
        subscription.stop()


def test_parse_sse_messages_and_comments():
    lines = [
        "retry: 2000",
        "",
        ": heartbeat",
        "id: 7",
        "event: change",
        'data: {"a":',
        "data: 1}",
        "",
        "event: disconnect",
        "data: {}",
        "",
    ]

    items = list(parse_sse(lines))

    assert items == [
        "heartbeat",
        StreamMessage(event="change", data='{"a":\n1}', id="7"),
        StreamMessage(event="disconnect", data="{}", id=None),
    ]


def test_stream_threads_end(live, tablets):
    before = threading.active_count()
    with LiveSubscription(tablets.open()) as subscription:
        assert wait_until(lambda: subscription.connects == 1)

    assert wait_until(lambda: threading.active_count() <= before)
    with httpx.Client(base_url=live.base_url) as http:
        assert http.get("/health").status_code == 200
