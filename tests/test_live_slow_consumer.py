"""A subscriber that stops reading is dropped with its resume position and does not delay ingestion or other subscribers."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest
from api_helpers import created, event, post_batch
from conftest import LiveServer, start_server, stop_server
from live_helpers import SseReader, bearer

from server.config import Settings

# Room for four batches, so the subscriber that reads keeps up even on a busy machine.
BUFFER_MESSAGES = 200
# Enough data that the kernel's socket buffers and uvicorn's write buffer fill
# up long before the last change: 1000 changes of about 9.5 KB, 9.5 MB in all.
# Linux lets a loopback send buffer grow to 4 MB by default (net.ipv4.tcp_wmem).
BATCHES = 20
EVENTS_PER_BATCH = 50
NOTE_TEXT = "spindle bearing noise measured at every speed step; " * 170


@pytest.fixture
def store_kind() -> str:
    """The mailbox is above the store, so one store covers it."""
    return "sqlite"


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    small = dataclasses.replace(settings, live_buffer_messages=BUFFER_MESSAGES, rate_limit_per_minute=0)
    server, thread, base_url = start_server(small)
    try:
        yield LiveServer(base_url=base_url, settings=small)
    finally:
        stop_server(server, thread)


class StalledReader:
    """A raw HTTP client with a tiny receive buffer that sends the request and then stops reading."""

    def __init__(self, base_url: str, token: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        request = (
            f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())

    def read_all(self, idle_timeout: float = 3.0) -> str:
        """Read until the response ends or nothing arrives for `idle_timeout` seconds; return the de-chunked body."""
        self.sock.settimeout(idle_timeout)
        raw = bytearray()
        while not raw.endswith(b"\r\n0\r\n\r\n"):
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            raw.extend(chunk)
        self.sock.close()
        head, _, body = bytes(raw).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        return dechunk(body).decode()


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out.extend(rest[:size])
        body = rest[size + 2 :]
    return bytes(out)


def test_slow_consumer_is_dropped_with_resume_position(live):
    token = live.token("dispatcher", "d-1")
    with live.client("dispatcher", "d-1") as http:
        post_batch(http, [created("wo-1")])
        stalled = StalledReader(live.base_url, token)
        with SseReader(live.base_url, headers=bearer(token)) as fast:
            time.sleep(0.3)  # both streams have joined the hub
            version = 1
            positions = []
            for _ in range(BATCHES):
                batch = [event("wo-1", "note_added", version, {"text": NOTE_TEXT}) for _ in range(EVENTS_PER_BATCH)]
                decisions = post_batch(http, batch)
                assert {d["status"] for d in decisions} == {"ACCEPTED"}
                positions += [d["global_position"] for d in decisions]
                version += EVENTS_PER_BATCH

            # The subscriber that reads keeps up and receives every change.
            fast_changes = fast.changes(len(positions), timeout=20)

        body = stalled.read_all()

    assert [change["position"] for change in fast_changes] == positions

    stalled_ids = [int(match) for match in re.findall(r"^id: (\d+)", body, flags=re.MULTILINE)]
    disconnect = re.search(r"^event: disconnect\r?\ndata: (.*?)\r?$", body, flags=re.MULTILINE)
    assert disconnect is not None, body[-500:]
    notice = json.loads(disconnect.group(1))
    assert notice["reason"] == "slow_consumer"
    # Everything up to the resume position arrived, in order, and nothing after it.
    assert stalled_ids == positions[: len(stalled_ids)]
    assert notice["resume_from"] == stalled_ids[-1]
    assert len(stalled_ids) < len(positions)

    # Resuming from that position sends the rest, with no loss and no duplicate.
    with SseReader(live.base_url, headers={**bearer(token), "Last-Event-ID": str(notice["resume_from"])}) as resumed:
        rest = resumed.changes(len(positions) - len(stalled_ids), timeout=20)
    assert stalled_ids + [change["position"] for change in rest] == positions
