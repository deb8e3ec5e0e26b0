"""Fixtures: a real server on a loopback port over a fresh SQLite file."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from server.app import create_app
from server.auth import mint_dev_token
from server.config import Settings
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var")


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
