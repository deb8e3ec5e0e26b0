"""Optional live subscription: follow `GET /v1/stream` and pull as soon as something changes.

A tablet that is online keeps one stream open instead of polling. The stream
only signals that the device's feed has moved on. The data still comes
through `SyncClient.pull()`, so the outbox, the cursor and the local read
model follow the same rules as without a stream.

    with SyncClient(...) as tablet, LiveSubscription(tablet) as live:
        ...  # tablet.pull() runs in the background after every change

The subscription runs in one daemon thread. It reconnects after a dropped
stream with exponential backoff and full jitter, and resumes from the
client's cursor, so a change made while it was disconnected still causes a
pull. A 409 `reset_required` (the server's store was restored) starts one
pull, which runs the client's reset, and the stream opens again from the new
cursor. It stops for good on a response that a retry cannot fix (401, 403,
another 4xx, or a second reset signal in a row). Then `last_error` and the
client's status contain the reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import httpx

from shared_schema.protocol import EPOCH_HEADER, SyncSignal

if TYPE_CHECKING:
    from .client import SyncClient

log = logging.getLogger("client_sdk.live")


@dataclasses.dataclass(frozen=True)
class StreamMessage:
    """One server-sent event: `event` is the event name, `data` the joined data lines, `id` the message id."""

    event: str = "message"
    data: str = ""
    id: str | None = None


def parse_sse(lines: Iterable[str]) -> Iterator[StreamMessage | str]:
    """Parse server-sent event lines into messages; a comment line is yielded as its text (such as "heartbeat")."""
    event = "message"
    data: list[str] = []
    message_id: str | None = None
    for line in lines:
        if line == "":
            if data or message_id is not None:
                yield StreamMessage(event=event, data="\n".join(data), id=message_id)
            event, data, message_id = "message", [], None
            continue
        if line.startswith(":"):
            yield line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            message_id = value


class StreamRejected(Exception):
    """The server rejected the stream with a 4xx; retrying the same request cannot succeed."""


class StreamReset(Exception):
    """The server rejected the stream with 409 `reset_required`, so the device must reset before it follows it."""


class LiveSubscription:
    """A background thread that keeps `GET /v1/stream` open and pulls after every change."""

    def __init__(
        self,
        client: SyncClient,
        *,
        on_pull: Callable[[int], None] | None = None,
        read_timeout: float = 45.0,
        heartbeat_seconds: float = 15.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        """Follow the stream of `client`'s server with its token.

        `on_pull` is called in the subscription's thread with the number of
        events each pull fetched. A stream silent for `read_timeout` seconds
        counts as dropped and is reopened. `heartbeat_seconds` is the server's
        CSDP_LIVE_HEARTBEAT_SECONDS, which the SDK cannot read, and
        `read_timeout` must be at least twice it, so one late heartbeat does
        not drop the stream.
        """
        if not 0.1 <= heartbeat_seconds <= 3600:
            raise ValueError(f"heartbeat_seconds must be from 0.1 to 3600, as on the server, got {heartbeat_seconds}")
        if read_timeout < 2 * heartbeat_seconds:
            raise ValueError(
                f"read_timeout must be at least twice the server's heartbeat of {heartbeat_seconds:g} s, "
                f"so at least {2 * heartbeat_seconds:g} s, got {read_timeout}; if the server sends heartbeats "
                "more often (CSDP_LIVE_HEARTBEAT_SECONDS), pass that value as heartbeat_seconds"
            )
        if initial_backoff < 0 or max_backoff < initial_backoff:
            raise ValueError(
                f"backoff must satisfy 0 <= initial_backoff <= max_backoff, got {initial_backoff} and {max_backoff}"
            )
        self.client = client
        self.on_pull = on_pull
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._http = http or httpx.Client(timeout=httpx.Timeout(10.0, read=read_timeout))
        self._owns_http = http is None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        self.pulls = 0
        """Pulls the subscription has run."""
        self.connects = 0
        """Streams opened, the first one included."""
        self.last_error: str | None = None
        """Why the last stream ended, or None while none failed."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LiveSubscription:
        if self.running:
            raise RuntimeError("the live subscription is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="client-sdk-live", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the stream and wait for the thread to end."""
        self._stop.set()
        response = self._response
        if response is not None:
            response.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> LiveSubscription:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        delay = self._initial_backoff
        reset_tried = False
        while not self._stop.is_set():
            try:
                self._follow()
                delay = self._initial_backoff
                reset_tried = False
            except StreamReset as exc:
                if reset_tried:
                    self._give_up(f"{exc}; the reset did not help")
                    return
                reset_tried = True
                log.warning("live stream rejected with reset_required; pulling once to reset, then opening it again")
                try:
                    self._pull()
                except Exception as pull_error:  # noqa: BLE001 - the sync error is in the client's status
                    self._give_up(f"{exc}; the pull that resets failed: {pull_error}")
                    return
            except StreamRejected as exc:
                self._give_up(str(exc))
                return
            except (httpx.HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.last_error = f"{type(exc).__name__}: {exc}"
                wait = random.uniform(0, delay)
                log.info("live stream dropped (%s); reconnecting in %.1f s", self.last_error, wait)
                self._stop.wait(wait)
                delay = min(delay * 2, self._max_backoff)

    def _give_up(self, reason: str) -> None:
        self.last_error = reason
        log.error("live stream rejected, subscription stopped: %s", reason)
        self.client.report_error(f"live subscription stopped: {reason}")

    def _follow(self) -> None:
        """Read one stream until it ends; pull once at the start and after every change."""
        transport = self.client.transport
        headers = {"Authorization": f"Bearer {transport.token_provider()}", "Accept": "text/event-stream"}
        epoch = self.client.log_epoch
        if epoch:
            headers[EPOCH_HEADER] = epoch
        url = f"{transport.base_url}/v1/stream"
        with self._http.stream("GET", url, params={"since": self.client.cursor}, headers=headers) as response:
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                response.read()
                message = f"GET /v1/stream returned {response.status_code}: {response.text[:300]}"
                if response.status_code == 409 and _reason(response) == SyncSignal.RESET_REQUIRED.value:
                    raise StreamReset(message)
                raise StreamRejected(message)
            response.raise_for_status()
            self._response = response
            self.connects += 1
            # Changes may have happened while no stream was open.
            self._pull()
            for item in parse_sse(response.iter_lines()):
                if self._stop.is_set():
                    return
                if isinstance(item, str):
                    continue
                if item.event == "change" and item.id is not None and int(item.id) > int(self.client.cursor):
                    self._pull()
                elif item.event == "disconnect":
                    log.info("live stream ended by the server: %s", json.loads(item.data).get("reason"))
                    return
        self._response = None

    def _pull(self) -> None:
        pulled = self.client.pull()
        self.pulls += 1
        if self.on_pull is not None:
            self.on_pull(pulled)


def _reason(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("reason") if isinstance(body, dict) else None
