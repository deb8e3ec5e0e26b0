"""Helpers for the client SDK tests: a fault-injecting transport, a sleep recorder and server queries.

Every request goes to the test server on 127.0.0.1. The transport forwards
it over a real connection and injects only what a real server cannot do on
demand, such as losing a response after the server committed the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import respx

from client_sdk import SyncClient, engineer_actor
from shared_schema import (
    ChangesPage,
    DecisionBatch,
    EventBatch,
    ProposedEvent,
    RecordedEvent,
    TimelineEntry,
    WorkOrderState,
)

ENGINEER = "e-17"
ORDER = "wo-1001"
# The engineer's path through one visit, from the assigned state to completed.
FIELD_FLOW = ("accepted", "travel_started", "arrived", "work_started", "completed")


class SleepRecorder:
    """Stand-in for `time.sleep` that records each wait in seconds and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclasses.dataclass(frozen=True)
class SentRequest:
    """One request as the transport received it from the SDK."""

    method: str
    path: str
    authorization: str | None
    body: bytes

    def client_event_ids(self) -> list[uuid.UUID]:
        """Return the client_event_id of each event in a `POST /v1/events` body."""
        batch = msgspec.json.decode(self.body, type=EventBatch)
        return [event.client_event_id for event in batch.events]


@dataclasses.dataclass
class _Fault:
    method: str
    path: str
    remaining: int
    lose_response: bool = False
    before_forward: Callable[[httpx.Request], None] | None = None


class FaultTransport(httpx.BaseTransport):
    """Forwards requests to the real server and applies scripted faults to matching ones.

    A fault matches on method and path and applies to the next `times`
    matching requests. Several faults may apply to the same request.
    """

    def __init__(self) -> None:
        self._forward = httpx.HTTPTransport()
        self._faults: list[_Fault] = []
        self.sent: list[SentRequest] = []

    def lose_response(self, method: str, path: str, times: int = 1) -> None:
        """Forward the request and let the server commit, then raise ReadError instead of returning the response."""
        self._faults.append(_Fault(method, path, times, lose_response=True))

    def before_forward(self, method: str, path: str, action: Callable[[httpx.Request], None], times: int = 1) -> None:
        """Call `action` with the request while it is in flight, before the server receives it."""
        self._faults.append(_Fault(method, path, times, before_forward=action))

    def requests(self, method: str, path: str) -> list[SentRequest]:
        return [sent for sent in self.sent if sent.method == method and sent.path == path]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append(SentRequest(request.method, request.url.path, request.headers.get("authorization"), body))
        faults = self._take_faults(request)
        for fault in faults:
            if fault.before_forward is not None:
                fault.before_forward(request)

        response = self._forward.handle_request(request)
        if any(fault.lose_response for fault in faults):
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the server sent its response", request=request)
        return response

    def _take_faults(self, request: httpx.Request) -> list[_Fault]:
        matching = [
            fault
            for fault in self._faults
            if fault.remaining > 0 and fault.method == request.method and fault.path == request.url.path
        ]
        for fault in matching:
            fault.remaining -= 1
        return matching

    def close(self) -> None:
        self._forward.close()


class Tablets:
    """Builds engineer SyncClients against one server and closes them and their HTTP clients at the end."""

    def __init__(self, server: Any, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self._closers: list[Callable[[], None]] = []

    def open(
        self,
        name: str = "tablet",
        *,
        engineer: str = ENGINEER,
        transport: httpx.BaseTransport | None = None,
        token_provider: Callable[[], str] | str | None = None,
        **options: Any,
    ) -> SyncClient:
        """Open a SyncClient on `<folder>/<name>.sqlite`. Opening the same name again reopens the same file."""
        http = None
        if transport is not None:
            http = httpx.Client(base_url=self.server.base_url, transport=transport, timeout=10)
            self._closers.append(http.close)
        options.setdefault("sleep", SleepRecorder())
        client = SyncClient(
            self.folder / f"{name}.sqlite",
            self.server.base_url,
            token_provider or self.server.token("engineer", engineer),
            device_id=f"{name}-{engineer}",
            actor=engineer_actor(engineer),
            http=http,
            **options,
        )
        self._closers.append(client.close)
        return client

    def close_all(self) -> None:
        for close in reversed(self._closers):
            close()


def record_flow(client: SyncClient, work_order_id: str = ORDER, event_types: tuple[str, ...] = FIELD_FLOW) -> list:
    """Record each event type in turn with an empty payload and return the outbox entries."""
    return [client.record(work_order_id, event_type) for event_type in event_types]


def server_state(server: Any, work_order_id: str, *, role: str = "dispatcher", subject: str = "d-1") -> WorkOrderState:
    """Fetch and decode `GET /v1/work-orders/{id}` as the given role."""
    with server.client(role, subject) as http:
        response = http.get(f"/v1/work-orders/{work_order_id}")
    response.raise_for_status()
    return msgspec.json.decode(response.content, type=WorkOrderState)


def server_events(server: Any, work_order_id: str) -> list[RecordedEvent]:
    """Read every accepted event of one order from the dispatcher's change feed."""
    events: list[RecordedEvent] = []
    cursor = "0"
    with server.client("dispatcher", "d-1") as http:
        while True:
            response = http.get("/v1/sync/changes", params={"since": cursor, "limit": 100})
            response.raise_for_status()
            page = msgspec.json.decode(response.content, type=ChangesPage)
            events.extend(event for event in page.events if event.work_order_id == work_order_id)
            cursor = page.next_cursor
            if not page.has_more:
                return events


def server_timeline(server: Any, work_order_id: str) -> list[TimelineEntry]:
    with server.client("dispatcher", "d-1") as http:
        response = http.get(f"/v1/work-orders/{work_order_id}/timeline")
    response.raise_for_status()
    return msgspec.json.decode(response.content, type=list[TimelineEntry])


def dispatch(server: Any, work_order_id: str, event_type: str, payload: dict[str, Any] | None = None) -> Any:
    """Post one event as dispatcher d-1 from the order's current server version and return its decision."""
    current = server_state(server, work_order_id)
    event = ProposedEvent(
        client_event_id=uuid.uuid4(),
        work_order_id=work_order_id,
        type=event_type,
        payload=payload or {},
        occurred_at=dt.datetime.now(dt.timezone.utc),
        base_version=current.version,
        device_id="console-d-1",
    )
    with server.client("dispatcher", "d-1") as http:
        response = http.post(
            "/v1/events",
            content=msgspec.json.encode(EventBatch(events=[event])),
            headers={"Content-Type": "application/json"},
        )
    response.raise_for_status()
    return msgspec.json.decode(response.content, type=DecisionBatch).decisions[0]


def pass_through(request: httpx.Request) -> httpx.Request:
    """respx side effect that sends the request on to the real server."""
    return request


@contextlib.contextmanager
def respx_faults(server: Any, method: str, path: str, *effects: Any) -> Iterator[respx.Route]:
    """Replace the responses to the next matching requests with `effects` in turn, then pass every request through.

    An effect is an `httpx.Response` to return instead of the server's, or an
    exception instance to raise as the transport would. All other routes go
    to the real server. respx patches `httpx.Client` here (`using="httpx"`):
    its default httpcore patch consults the routes twice for a request that
    passes through, which doubles the route's call count.
    """
    queue = list(effects)

    def next_effect(request: httpx.Request) -> httpx.Response | httpx.Request:
        if not queue:
            return request
        effect = queue.pop(0)
        if isinstance(effect, BaseException):
            raise effect
        return effect

    with respx.mock(base_url=server.base_url, assert_all_called=False, using="httpx") as router:
        route = router.route(method=method, path=path).mock(side_effect=next_effect)
        router.route().pass_through()
        yield route
