"""Fixtures: a real server on a loopback port over a fresh SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import structlog
import uvicorn
from sdk_helpers import Tablets

from server.app import create_app
from server.security import mint_dev_token
from server.config import Settings
from server.logging import configure_logging
from server.store import PostgresStore
from shared_schema import Role


# Building an SSL context costs about 0.1 s, and httpx builds one per client
# unless it is given one, even for plain http:// URLs.
SHARED_SSL_CONTEXT = ssl.create_default_context()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class LiveServer:
    base_url: str
    settings: Settings

    def token(self, role: str | Role, subject: str, engineer_id: str | None = None) -> str:
        return mint_dev_token(self.settings, subject=subject, role=Role(role), engineer_id=engineer_id)

    def client(self, role: str | Role, subject: str, engineer_id: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(role, subject, engineer_id)}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, verify=SHARED_SSL_CONTEXT)


def start_server(settings: Settings, *, demo: bool = False) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, demo=demo), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=15)


# Servers started inside the test process log only what needs attention.
configure_logging("WARNING")


@pytest.fixture(autouse=True)
def restore_logging_configuration() -> Iterator[None]:
    """Put back the logging set-up a test changed, such as a simulator's main() run in the test process."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)

POSTGRES_ADMIN_URL = os.environ.get("CSDP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _run_admin_sql(sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@contextlib.contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty database named after `prefix`, yield its URL and drop it on the way out."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        _run_admin_sql(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable ({exc}); start it or set CSDP_TEST_POSTGRES_URL")
    try:
        yield f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        _run_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create a database for this test session and drop it at the end; yield its URL."""
    with new_postgres_database("csdp_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store a test runs against; modules that test one store override this fixture."""
    return request.param


@pytest.fixture
def settings(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for a fresh store: a new SQLite file, or a new schema in the session's PostgreSQL database."""
    if store_kind == "sqlite":
        yield Settings(var_dir=tmp_path / "var")
        return
    database_url = request.getfixturevalue("postgres_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{database_url}?search_path={schema}"

    async def create() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f"CREATE SCHEMA {schema}")
        finally:
            await connection.close()
        store = PostgresStore(url)
        await store.open(migrate=True)
        await store.close()

    async def drop() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await connection.close()

    asyncio.run(create())
    yield Settings(var_dir=tmp_path / "var", database_url=url)
    asyncio.run(drop())


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server, thread, base_url = start_server(settings)
    try:
        yield LiveServer(base_url=base_url, settings=settings)
    finally:
        stop_server(server, thread)


@pytest.fixture
def demo_server(settings: Settings) -> Iterator[LiveServer]:
    server, thread, base_url = start_server(settings, demo=True)
    try:
        yield LiveServer(base_url=base_url, settings=settings)
    finally:
        stop_server(server, thread)


@pytest.fixture
def tablets(demo_server: LiveServer, tmp_path: Path) -> Iterator[Tablets]:
    """SDK clients against the demo server, each with its own file, closed after the test."""
    factory = Tablets(demo_server, tmp_path / "devices")
    yield factory
    factory.close_all()
