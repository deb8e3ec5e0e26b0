"""Live updates across two real server processes on one PostgreSQL database.

The hubs poll only every 30 s here, so an update that arrives within a
second came through LISTEN/NOTIFY, not through the fallback poll.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from api_helpers import created, event, post_batch
from live_helpers import SseReader, bearer

from server.config import Settings
from server.live.pg_wake import APPLICATION_NAME_PREFIX
from server.security import mint_dev_token
from shared_schema import Role
from simulators.server_process import ServerProcess

LIVE_ENVIRONMENT = {
    "CSDP_LIVE_POLL_SECONDS": "30",
    "CSDP_LIVE_LISTENER_CHECK_SECONDS": "0.5",
    "CSDP_LIVE_HEARTBEAT_SECONDS": "1",
    "CSDP_SLA_CLOCK_SECONDS": "0",
}
# Required delivery time of an update accepted by another process.
DELIVERY_LIMIT_SECONDS = 1.0


@pytest.fixture
def store_kind() -> str:
    return "postgres"


@pytest.fixture
def two_servers(settings: Settings, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Two server processes on one database; yields both and a dispatcher token."""
    var_dir = tmp_path / "shared-var"
    servers = [
        ServerProcess(var_dir, database_url=settings.database_url, log_path=tmp_path / f"server-{name}.log",
                      environment=LIVE_ENVIRONMENT)
        for name in ("a", "b")
    ]
    for server in servers:
        server.start()
    token = mint_dev_token(Settings(var_dir=var_dir), subject="d-1", role=Role.DISPATCHER)
    try:
        yield servers[0], servers[1], token
    finally:
        for server in servers:
            server.stop()


def post_to(server: ServerProcess, token: str, events: list[dict]) -> list[dict]:
    with httpx.Client(base_url=server.base_url, headers=bearer(token), timeout=30) as http:
        return post_batch(http, events)


def listener_pids(database_url: str, server: ServerProcess) -> list[int]:
    """Return the backends of `server`'s listening connection in this test's database."""

    async def read() -> list[int]:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
                f"{APPLICATION_NAME_PREFIX}{server.process.pid}",  # type: ignore[union-attr]
            )
            return [row[0] for row in rows]
        finally:
            await connection.close()

    return asyncio.run(read())


def terminate_backend(database_url: str, pid: int) -> bool:
    async def run() -> bool:
        connection = await asyncpg.connect(database_url)
        try:
            return bool(await connection.fetchval("SELECT pg_terminate_backend($1)", pid))
        finally:
            await connection.close()

    return asyncio.run(run())


def wait_for(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(message)


def test_event_on_a_reaches_subscriber_of_b(two_servers):
    server_a, server_b, token = two_servers
    with SseReader(server_b.base_url, headers=bearer(token)) as reader:
        delays = []
        for index in range(5):
            started = time.monotonic()
            decision = post_to(server_a, token, [created(f"wo-{index}")])[0]
            change = reader.changes(1, timeout=DELIVERY_LIMIT_SECONDS)[0]
            delays.append(time.monotonic() - started)
            assert change["position"] == decision["global_position"]

    assert max(delays) < DELIVERY_LIMIT_SECONDS


def test_terminated_listener_reconnects(two_servers, settings):
    server_a, server_b, token = two_servers
    database_url = settings.database_url
    with SseReader(server_b.base_url, headers=bearer(token)) as reader:
        old_pids = wait_for(lambda: listener_pids(database_url, server_b), 10, "server B has no listening connection")
        assert len(old_pids) == 1

        assert terminate_backend(database_url, old_pids[0])
        # Accepted while B has no listener: B reads it once it reconnects.
        during = post_to(server_a, token, [created("wo-during-outage")])[0]
        new_pids = wait_for(
            lambda: [pid for pid in listener_pids(database_url, server_b) if pid not in old_pids],
            10,
            "server B did not open a new listening connection",
        )
        first = reader.changes(1, timeout=5)[0]
        decision = post_to(server_a, token, [created("wo-after-reconnect")])[0]
        second = reader.changes(1, timeout=DELIVERY_LIMIT_SECONDS)[0]

    assert len(new_pids) == 1
    assert first["position"] == during["global_position"]
    assert second["position"] == decision["global_position"]
    assert "live_listener_lost" in server_b.log_path.read_text()


def test_resume_on_other_process(two_servers):
    server_a, server_b, token = two_servers
    with SseReader(server_b.base_url, headers=bearer(token), params={"since": 0}) as reader:
        post_to(server_a, token, [created(f"wo-{index}") for index in range(6)])
        seen = reader.changes(2, timeout=5)
    post_to(server_b, token, [event("wo-0", "note_added", 1, {"text": "customer called"})])
    with SseReader(server_a.base_url, headers={**bearer(token), "Last-Event-ID": str(seen[-1]["position"])}) as reader:
        rest = reader.changes(5, timeout=5)

    assert [change["position"] for change in seen + rest] == list(range(1, 8))
    assert rest[-1]["type"] == "note_added"


def test_notifications_are_not_data(two_servers, settings):
    """A NOTIFY from elsewhere on the channel only wakes the hub; the subscriber gets nothing from it."""
    server_a, server_b, token = two_servers

    async def notify() -> None:
        connection = await asyncpg.connect(settings.database_url)
        try:
            await connection.execute("SELECT pg_notify('csdp_live', $1)", str(uuid.uuid4()))
        finally:
            await connection.close()

    with SseReader(server_b.base_url, headers=bearer(token)) as reader:
        asyncio.run(notify())
        decision = post_to(server_a, token, [created("wo-1")])[0]
        change = reader.changes(1, timeout=DELIVERY_LIMIT_SECONDS)[0]

    assert change["position"] == decision["global_position"]
