"""Readers of the live stream for tests: an SSE reader thread and a wait helper."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Any

import httpx

from client_sdk.live import StreamMessage, parse_sse


class SseReader:
    """Reads `GET /v1/stream` in a thread and queues every message and comment.

    `status_code` and `headers` are set once the response starts; a refused
    stream leaves its JSON body in `error_body`.
    """

    def __init__(self, base_url: str, *, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.params = params or {}
        self.headers = headers or {}
        self.items: queue.Queue[StreamMessage | str | None] = queue.Queue()
        self.started = threading.Event()
        self.status_code: int | None = None
        self.error_body: dict[str, Any] | None = None
        self.response_headers: httpx.Headers | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._response: httpx.Response | None = None
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 10.0) -> SseReader:
        self._thread.start()
        assert self.started.wait(timeout), "the stream did not answer"
        return self

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.base_url + "/v1/stream", params=self.params, headers=self.headers) as response:
                self._response = response
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.status_code = response.status_code
                self.response_headers = response.headers
                if response.status_code != 200:
                    response.read()
                    self.error_body = response.json()
                    self.started.set()
                    return
                self.started.set()
                for item in parse_sse(response.iter_lines()):
                    self.items.put(item)
        except (httpx.HTTPError, OSError, RuntimeError):
            pass
        finally:
            self.started.set()
            self.items.put(None)

    def next(self, timeout: float = 5.0, *, skip_comments: bool = True) -> StreamMessage | str | None:
        """Return the next message (None once the stream ended); raise AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self.items.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"no message within {timeout} s") from None
            if skip_comments and isinstance(item, str):
                continue
            return item

    def changes(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Return the data of the next `count` change messages."""
        found = []
        while len(found) < count:
            item = self.next(timeout)
            assert item is not None, f"the stream ended after {len(found)} of {count} changes"
            assert isinstance(item, StreamMessage)
            if item.event == "change":
                data = json.loads(item.data)
                assert item.id == str(data["position"])
                found.append(data)
        return found

    def close(self) -> None:
        """Close the connection at once, as a client that goes away does.

        Closing the httpx response from another thread does not interrupt the
        reader thread's blocking read, so the socket is shut down instead.
        """
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the SSE reader thread did not end"
        self._client.close()

    def __enter__(self) -> SseReader:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
