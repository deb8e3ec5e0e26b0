"""SyncLoop against a real server and against a closed loopback port: triggers, backoff, start and stop."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from client_sdk import SyncClient, SyncLoop, engineer_actor
from sdk_helpers import ENGINEER, ORDER, server_state
from shared_schema import WorkOrderStatus
from conftest import free_port


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: the loop behaves the same whatever store the server uses."""
    return "sqlite"


class RequestCounter:
    """httpx event hook that counts requests, for clients whose server may not be there."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> None:
        with self._lock:
            self.count += 1


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def offline_client(tmp_path, counter: RequestCounter, port: int) -> tuple[SyncClient, httpx.Client]:
    http = httpx.Client(event_hooks={"request": [counter]}, timeout=2)
    client = SyncClient(
        tmp_path / "tablet.sqlite",
        f"http://127.0.0.1:{port}",
        "token",
        device_id="tablet-e-17",
        actor=engineer_actor(ENGINEER),
        http=http,
        max_attempts=1,
    )
    return client, http


def test_loop_syncs_on_start_and_record(demo_server, tablets):
    client = tablets.open()
    loop = SyncLoop(client, interval=60, record_delay=0.01)
    loop.start()
    try:
        assert wait_until(lambda: client.last_successful_sync is not None)
        first_attempts = loop.attempts
        client.record(ORDER, "accepted")
        assert wait_until(lambda: client.pending_count() == 0)
    finally:
        assert loop.stop(timeout=10)

    assert first_attempts == 1
    assert loop.attempts == 2
    assert server_state(demo_server, ORDER).status is WorkOrderStatus.ACCEPTED


def test_loop_syncs_on_timer(demo_server, tablets):
    client = tablets.open()
    loop = SyncLoop(client, interval=0.1)
    loop.start()
    try:
        assert wait_until(lambda: loop.attempts >= 3, timeout=5)
    finally:
        loop.stop(timeout=10)

    assert loop.last_exception is None


def test_offline_loop_backs_off(tmp_path):
    counter = RequestCounter()
    # Nothing listens on this loopback port, so every connection is refused at once.
    client, http = offline_client(tmp_path, counter, free_port())
    loop = SyncLoop(client, interval=0.01, initial_backoff=0.1, max_backoff=0.4, record_delay=0)
    recorded = 0
    loop.start()
    try:
        started = time.monotonic()
        # Records while offline must not cause extra attempts.
        while time.monotonic() - started < 2.0:
            client.record(ORDER, "note_added", {"text": "offline"})
            recorded += 1
            loop.trigger()
            time.sleep(0.01)
        assert loop.stop(timeout=10)
        pending = client.pending_count()
    finally:
        loop.stop(timeout=10)
        client.close()
        http.close()

    # Equal jitter waits at least half of 0.1, 0.2, 0.4, 0.4, ... s: at most 1 + 0.05 + 0.1 + 4 * 0.2 + ... in 2 s.
    assert 3 <= loop.attempts <= 10
    assert counter.count == loop.attempts
    assert pending == recorded


def test_connectivity_regained_syncs_at_once(demo_server, tmp_path):
    counter = RequestCounter()
    port = free_port()
    client, http = offline_client(tmp_path, counter, port)
    loop = SyncLoop(client, interval=60, initial_backoff=30, max_backoff=60)
    loop.connectivity_changed(False)
    loop.start()
    try:
        client.record(ORDER, "note_added", {"text": "offline"})
        time.sleep(0.3)
        # Offline: neither the start nor the record made a request.
        assert counter.count == 0
        loop.connectivity_changed(True)
        assert wait_until(lambda: counter.count == 1, timeout=5)
    finally:
        assert loop.stop(timeout=10)
        client.close()
        http.close()

    assert loop.attempts == 1


def test_connectivity_resets_backoff(demo_server, tablets, tmp_path):
    counter = RequestCounter()
    client, http = offline_client(tmp_path, counter, free_port())
    loop = SyncLoop(client, interval=60, initial_backoff=30, max_backoff=60)
    loop.start()
    try:
        assert wait_until(lambda: loop.attempts == 1)
        loop.trigger()
        time.sleep(0.2)
        # Waiting out a 15 to 30 s backoff: the trigger made no attempt.
        assert loop.attempts == 1
        loop.connectivity_changed(False)
        loop.connectivity_changed(True)
        assert wait_until(lambda: loop.attempts == 2)
    finally:
        assert loop.stop(timeout=10)
        client.close()
        http.close()


def test_loop_start_twice_raises(tablets):
    loop = SyncLoop(tablets.open(), interval=60)
    loop.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            loop.start()
    finally:
        assert loop.stop(timeout=10)
    assert not loop.running


def test_loop_restarts_after_stop(tablets):
    client = tablets.open()
    loop = SyncLoop(client, interval=60)
    loop.start()
    assert wait_until(lambda: loop.attempts == 1)
    assert loop.stop(timeout=10)
    loop.start()
    try:
        assert wait_until(lambda: loop.attempts == 2)
    finally:
        assert loop.stop(timeout=10)


def test_stop_without_start_returns_true(tablets):
    assert SyncLoop(tablets.open(), interval=60).stop()


def test_record_after_stop_no_sync(tablets):
    client = tablets.open()
    loop = SyncLoop(client, interval=60, record_delay=0)
    loop.start()
    assert wait_until(lambda: loop.attempts == 1)
    loop.stop(timeout=10)

    client.record(ORDER, "accepted")
    time.sleep(0.1)

    assert loop.attempts == 1
    assert client.pending_count() == 1


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("interval", 0),
        ("initial_backoff", -1),
        ("max_backoff", 0),
        ("record_delay", -0.1),
    ],
)
def test_loop_invalid_option_raises(tablets, option, value):
    with pytest.raises(ValueError, match=option):
        SyncLoop(tablets.open(), **{option: value})


def test_loop_max_below_initial_raises(tablets):
    with pytest.raises(ValueError, match="max_backoff"):
        SyncLoop(tablets.open(), initial_backoff=10, max_backoff=1)
