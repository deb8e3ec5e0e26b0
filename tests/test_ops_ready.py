"""`GET /health` and `GET /ready` (and their HEAD): ready when everything runs, and a 503 naming each cause otherwise."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest
from conftest import start_server, stop_server
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.config import Settings
from server.sla import clock_job


@pytest.fixture
def store_kind() -> str:
    """The checks sit above the store; the database cases use SQLite, whose file a test can change directly."""
    return "sqlite"


def build(settings: Settings, **overrides: object):  # type: ignore[no-untyped-def]
    values = {"var_dir": settings.var_dir, "sla_clock_seconds": 0.1, **overrides}
    return create_app(Settings(**values))  # type: ignore[arg-type]


async def ready(client: AsyncTestClient) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await client.get("/ready")
    return response.status_code, response.json()


async def test_health_answers_ok(settings):
    async with AsyncTestClient(build(settings)) as client:
        response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_all_checks_pass(settings):
    async with AsyncTestClient(build(settings)) as client:
        await asyncio.sleep(0.3)
        status, body = await ready(client)

    assert status == 200, body
    assert body == {"status": "ready", "events": 0}


async def test_ready_with_jobs_switched_off(settings):
    app = create_app(Settings(var_dir=settings.var_dir, sla_clock_seconds=0), kpi_projector=False)
    async with AsyncTestClient(app) as client:
        status, body = await ready(client)
        checks = (await app.state.readiness.check()).checks

    assert status == 200, body
    details = {check.name: check.detail for check in checks}
    assert details["kpi_projector"] == "off in this process"
    assert details["sla_clock"] == "off (CSDP_SLA_CLOCK_SECONDS is 0)"


async def test_not_ready_when_database_closed(settings):
    app = build(settings)
    async with AsyncTestClient(app) as client:
        client.blocking_portal.call(app.state.store.close)
        status, body = await ready(client)
        client.blocking_portal.call(app.state.store.open)

    assert status == 503
    assert body["status"] == "not_ready"
    assert "events" not in body
    assert body["checks"]["database"]["ok"] is False
    assert "cannot be queried" in body["checks"]["database"]["detail"]
    assert any(cause.startswith("database: ") for cause in body["not_ready"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)", "run csdp migrate"),
        ("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'x')", "upgrade this server"),
    ],
    ids=["behind", "ahead"],
)
async def test_not_ready_when_schema_differs(settings, change, expected):
    app = build(settings)
    async with AsyncTestClient(app) as client:
        with sqlite3.connect(settings.sqlite_path) as connection:
            connection.execute(change)
        status, body = await ready(client)

    assert status == 503
    assert body["checks"]["migrations"]["ok"] is False
    assert expected in body["checks"]["migrations"]["detail"]
    assert body["checks"]["database"]["ok"] is True


async def test_not_ready_when_projector_stopped(settings):
    app = build(settings)
    async with AsyncTestClient(app) as client:
        # The app runs on the test client's own event loop, so its tasks are stopped there.
        client.blocking_portal.call(app.state.kpi_projector.stop)
        status, body = await ready(client)

    assert status == 503
    assert body["not_ready"] == ["kpi_projector: the task is not running"]


async def test_not_ready_when_projector_stalls(settings):
    app = build(settings)
    projector = app.state.kpi_projector

    async def failing_batch(limit: int) -> tuple[int, int]:
        raise sqlite3.OperationalError("disk I/O error")

    async with AsyncTestClient(app) as client:
        projector.history.apply_batch = failing_batch
        app.state.readiness.projector_stall_seconds = 0.3
        await asyncio.sleep(0.6)
        status, body = await ready(client)

    assert status == 503
    detail = body["checks"]["kpi_projector"]["detail"]
    assert detail.startswith("no batch has succeeded for")
    assert "failures in a row" in detail
    assert projector.failures >= 1


async def test_not_ready_when_sla_clock_stopped(settings):
    app = build(settings)
    async with AsyncTestClient(app) as client:
        client.blocking_portal.call(app.state.sla_clock.stop)
        status, body = await ready(client)

    assert status == 503
    assert body["not_ready"] == ["sla_clock: the task is not running"]


async def test_not_ready_when_sla_clock_hangs(settings, monkeypatch):
    hung = asyncio.Event()

    async def hanging_run(*args: object) -> None:
        hung.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(clock_job, "run_clock_once", hanging_run)
    app = build(settings)
    async with AsyncTestClient(app) as client:
        await asyncio.wait_for(hung.wait(), 5)
        # The run never ends, so the last finished run is as old as the job; move its start back past the limit.
        app.state.sla_clock.started_at = time.monotonic() - 3600
        status, body = await ready(client)

    assert status == 503
    assert body["checks"]["sla_clock"]["detail"].startswith("no run has finished for")


async def test_not_ready_logged_once_per_change(settings, monkeypatch):
    from server.observability import readiness as readiness_module

    lines: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    class Recorder:
        def warning(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

        def info(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    monkeypatch.setattr(readiness_module, "log", Recorder())
    app = build(settings)
    async with AsyncTestClient(app) as client:
        client.blocking_portal.call(app.state.sla_clock.stop)
        for _ in range(3):
            await ready(client)
        client.blocking_portal.call(app.state.sla_clock.start)
        await ready(client)
        await ready(client)

    assert [event for event, _ in lines] == ["not_ready", "ready_again"]
    assert lines[0][1]["causes"] == ["sla_clock: the task is not running"]
    assert lines[1][1]["previously_failing"] == ["sla_clock"]


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_head_matches_get(settings, path):
    """Load balancers often probe with HEAD: same status and headers as GET, no body."""
    server, thread, base_url = start_server(settings)
    try:
        got = httpx.get(f"{base_url}{path}", timeout=10)
        head = httpx.head(f"{base_url}{path}", timeout=10)
        with sqlite3.connect(settings.sqlite_path) as connection:
            connection.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'x')")
        failing = httpx.head(f"{base_url}{path}", timeout=10)
    finally:
        stop_server(server, thread)

    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]
    assert failing.status_code == (200 if path == "/health" else 503)
    assert failing.content == b""
