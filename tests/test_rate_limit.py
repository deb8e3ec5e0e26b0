"""Per-subject rate limit on `POST /v1/events`: 429 with Retry-After, which the SDK waits out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from api_helpers import Clients, assigned, created, post_batch
from conftest import LiveServer, start_server, stop_server
from sdk_helpers import ENGINEER, Tablets

from server.config import Settings
from server.security.rate_limit import RateLimiter


@pytest.fixture
def store_kind() -> str:
    """The limit is applied before the store is used, so one store covers it."""
    return "sqlite"


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[LiveServer]:
    limited = Settings(var_dir=settings.var_dir, rate_limit_per_minute=60, rate_limit_burst=3)
    server, thread, base_url = start_server(limited)
    yield LiveServer(base_url=base_url, settings=limited)
    stop_server(server, thread)


@pytest.fixture
def api(limited_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(limited_server)
    yield clients
    clients.close()


def test_burst_then_429_with_retry_after(api):
    dispatcher = api("dispatcher", "d-1")

    statuses = [dispatcher.post("/v1/events", json={"events": [created(f"wo-{n}")]}).status_code for n in range(4)]
    limited = dispatcher.post("/v1/events", json={"events": [created("wo-9")]})

    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert limited.json()["reason"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["retry_after"] == int(limited.headers["retry-after"])
    assert dispatcher.get("/v1/work-orders/wo-9").status_code == 404


def test_limit_is_per_subject_and_commands_only(api):
    first = api("dispatcher", "d-1")
    second = api("dispatcher", "d-2")
    for number in range(3):
        first.post("/v1/events", json={"events": [created(f"wo-{number}")]})

    other_subject = second.post("/v1/events", json={"events": [created("wo-other")]})
    reads = {first.get("/v1/work-orders").status_code for _ in range(10)}

    assert other_subject.status_code == 200
    assert reads == {200}


def test_limited_request_audited(api):
    dispatcher = api("dispatcher", "d-1")
    manager = api("manager", "m-1")
    for number in range(4):
        dispatcher.post("/v1/events", json={"events": [created(f"wo-{number}")]})

    deadline = time.monotonic() + 10
    while True:
        items = manager.get("/v1/audit", params={"reason": "rate_limited"}).json()["items"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    assert [(item["subject"], item["status_code"], item["path"]) for item in items] == [("d-1", 429, "/v1/events")]


class SleepingRecorder:
    """Records each wait and really sleeps, so the server's bucket refills meanwhile."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def test_sdk_waits_out_the_limit(limited_server, tmp_path, api):
    dispatcher = api("dispatcher", "d-1")
    post_batch(dispatcher, [created("wo-0"), assigned("wo-0", ENGINEER)])
    tablets = Tablets(limited_server, tmp_path)
    recorder = SleepingRecorder()
    client = tablets.open(batch_size=1, sleep=recorder, max_attempts=10)
    try:
        client.sync()
        client.record("wo-0", "accepted")
        for number in range(4):
            client.record("wo-0", "note_added", {"text": f"note {number}"})

        report = client.sync()
        pending = client.pending_count()
    finally:
        tablets.close_all()

    # Five one-event batches against a burst of three: the SDK got 429 and waited for the Retry-After seconds.
    assert report.accepted == 5
    assert pending == 0
    assert recorder.waits
    assert set(recorder.waits) == {1.0}


def test_bucket_refills_at_the_configured_rate():
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])

    first = [limiter.acquire("s") for _ in range(3)]
    now[0] = 0.5
    half_second = limiter.acquire("s")
    now[0] = 1.0
    one_second = limiter.acquire("s")

    assert first == [None, None, 1.0]
    assert half_second == 1.0
    assert one_second is None


def test_rate_limit_zero_turns_it_off():
    limiter = RateLimiter(per_minute=0, burst=0)

    assert [limiter.acquire("s") for _ in range(1000)] == [None] * 1000
