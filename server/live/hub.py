"""The live hub of one server process: reads new events once and fans them out to subscribers.

The hub keeps `head`, the last global position it has read. It reads the
events after `head` when it is woken (an append in this process, or a
notification from another process on PostgreSQL) and at least every
`poll_seconds`, so a lost wake-up delays an update by one poll at most. One
query per read serves every subscriber of the process.

Each subscriber has a bounded mailbox. The hub never waits for a subscriber:
when too many changes wait in a mailbox, the subscriber is dropped and gets a
`disconnect` message with the last position it received, so a slow reader
cannot hold back ingestion or the other subscribers.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import structlog

from ..store import Store, StoreError
from ..store.live_reads import LiveRow, last_position, live_rows_since
from .messages import SERVER_STOPPING, SLOW_CONSUMER, STORE_UNAVAILABLE, TOKEN_EXPIRED, StreamFilter

log = structlog.get_logger("csdp.live")

# Events read per query, by the hub and by a subscriber that catches up.
PAGE_SIZE = 500


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """An accepted event as encoded for one subscriber."""

    position: int
    data: str


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing happened for a heartbeat interval; `position` is the subscriber's resume position."""

    position: int


@dataclasses.dataclass(frozen=True, slots=True)
class Disconnect:
    """The stream ends; the client resumes after `resume_from`."""

    reason: str
    resume_from: int


StreamItem = Change | Heartbeat | Disconnect


class Subscriber:
    """One open stream: its filter, its bounded mailbox and the last position queued for it."""

    def __init__(self, stream_filter: StreamFilter, buffer_size: int, cursor: int, subscriber_id: int) -> None:
        self.filter = stream_filter
        self.buffer_size = buffer_size
        self.cursor = cursor
        """Every position up to this one has been queued or skipped by the filter."""
        self.sent = cursor
        """The position of the last change handed to the transport, the client's resume position."""
        self.id = subscriber_id
        self.mailbox: collections.deque[Change] = collections.deque()
        self.signal = asyncio.Event()
        self.closed_reason: str | None = None

    def offer(self, row: LiveRow, cache: dict[bool, str]) -> None:
        """Queue `row` when the filter passes it."""
        if row.position <= self.cursor:
            return
        data = self.filter.message(row, cache)
        if data is not None:
            self.mailbox.append(Change(row.position, data))
            self.signal.set()
        self.cursor = row.position

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self.signal.set()


class LiveHub:
    """Fan-out of accepted events to the live subscribers of this process."""

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float,
        heartbeat_seconds: float,
        buffer_size: int,
        announcer: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.buffer_size = buffer_size
        self.head = 0
        self._announcer = announcer
        self._subscribers: dict[int, Subscriber] = {}
        self._next_id = 1
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def subscriber_count(self) -> int:
        """Open streams of this process, SSE and WebSocket together."""
        return len(self._subscribers)

    def set_announcer(self, announcer: Callable[[int], None] | None) -> None:
        """Set the callback that notifies other server processes of a new position."""
        self._announcer = announcer

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Read the current head of the log and start the read loop; events before it are not fanned out."""
        self.head = await last_position(self.store)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="live-hub")
        log.info("live_hub_started", head=self.head, poll_seconds=self.poll_seconds, buffer_size=self.buffer_size)

    async def stop(self) -> None:
        """Stop reading and end every open stream with `server_stopping`."""
        self._stopping = True
        for subscriber in list(self._subscribers.values()):
            subscriber.close(SERVER_STOPPING)
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        log.info("live_hub_stopped", head=self.head)

    def wake(self) -> None:
        """Read the log now instead of at the next poll."""
        self._wake.set()

    def announce(self, position: int) -> None:
        """Record that this process committed events up to `position`: wake the hub and tell other processes."""
        self._wake.set()
        if self._announcer is not None:
            self._announcer(position)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                rows = await live_rows_since(self.store, self.head, limit=PAGE_SIZE)
            except StoreError as exc:
                log.warning("live_read_failed", head=self.head, error=str(exc), retry_in_seconds=self.poll_seconds)
                continue
            except Exception:  # noqa: BLE001 - the loop must outlive a bug in one read, or every stream stalls
                log.exception("live_read_crashed", head=self.head, retry_in_seconds=self.poll_seconds)
                continue
            if rows:
                self._fan_out(rows)
            if len(rows) == PAGE_SIZE:
                self._wake.set()

    def _fan_out(self, rows: list[LiveRow]) -> None:
        # A subscriber is too slow when `buffer_size` changes still wait for it
        # as new ones arrive. The check comes before the new rows, so one read
        # of up to PAGE_SIZE rows (one large batch) never drops a reader that
        # keeps up. A mailbox contains at most buffer_size - 1 + PAGE_SIZE changes.
        for subscriber in [s for s in self._subscribers.values() if len(s.mailbox) >= s.buffer_size]:
            subscriber.close(SLOW_CONSUMER)
            self._subscribers.pop(subscriber.id, None)
            log.warning(
                "live_subscriber_dropped",
                subscriber_id=subscriber.id,
                reason=SLOW_CONSUMER,
                waiting=len(subscriber.mailbox),
                resume_from=subscriber.mailbox[-1].position,
            )
        for row in rows:
            cache: dict[bool, str] = {}
            for subscriber in self._subscribers.values():
                subscriber.offer(row, cache)
        self.head = rows[-1].position

    # -- subscribers ---------------------------------------------------------

    async def subscribe(
        self, stream_filter: StreamFilter, since: int, *, expires_at: float | None = None
    ) -> AsyncIterator[StreamItem]:
        """Yield the changes after `since` that pass the filter, then live ones, with heartbeats.

        The changes up to the hub's head are read from the store first. The
        subscriber joins the hub only once it has caught up, in the same step
        that compares its position with the head, so no change is lost or sent
        twice. The iterator ends after a `Disconnect`. `expires_at` (a
        `time.time()` instant, such as the token's expiry) ends the stream with
        `token_expired`.
        """
        subscriber = Subscriber(stream_filter, self.buffer_size, since, self._next_id)
        self._next_id += 1
        try:
            try:
                async for item in self._catch_up(subscriber):
                    yield item
            except StoreError as exc:
                log.warning("live_catch_up_failed", subscriber_id=subscriber.id, position=subscriber.cursor, error=str(exc))
                yield Disconnect(STORE_UNAVAILABLE, subscriber.sent)
                return
            if subscriber.closed_reason is None:
                self._subscribers[subscriber.id] = subscriber
                log.info("live_subscriber_joined", subscriber_id=subscriber.id, position=subscriber.cursor)
            async for item in self._drain(subscriber, expires_at):
                yield item
        finally:
            self._subscribers.pop(subscriber.id, None)
            log.info("live_subscriber_left", subscriber_id=subscriber.id, resume_from=subscriber.sent, reason=subscriber.closed_reason)

    async def _catch_up(self, subscriber: Subscriber) -> AsyncIterator[StreamItem]:
        engineer = subscriber.filter.audience_engineer
        while subscriber.cursor < self.head and not self._stopping:
            target = self.head
            rows = await live_rows_since(self.store, subscriber.cursor, limit=PAGE_SIZE, engineer_id=engineer)
            for row in rows:
                data = subscriber.filter.message(row)
                subscriber.cursor = row.position
                if data is not None:
                    subscriber.sent = row.position
                    yield Change(row.position, data)
            if len(rows) < PAGE_SIZE:
                # The store had nothing more for this subscriber up to its last
                # position when it was read, which is at least the head read before.
                subscriber.cursor = max(subscriber.cursor, target)
        if self._stopping:
            subscriber.close(SERVER_STOPPING)

    async def _drain(self, subscriber: Subscriber, expires_at: float | None) -> AsyncIterator[StreamItem]:
        while True:
            while subscriber.mailbox:
                change = subscriber.mailbox.popleft()
                subscriber.sent = change.position
                yield change
            if subscriber.closed_reason is not None:
                yield Disconnect(subscriber.closed_reason, subscriber.sent)
                return
            timeout = self.heartbeat_seconds
            if expires_at is not None:
                remaining = expires_at - time.time()
                if remaining <= 0:
                    yield Disconnect(TOKEN_EXPIRED, subscriber.sent)
                    return
                timeout = min(timeout, remaining)
            subscriber.signal.clear()
            try:
                await asyncio.wait_for(subscriber.signal.wait(), timeout)
            except asyncio.TimeoutError:
                if expires_at is None or expires_at > time.time():
                    yield Heartbeat(subscriber.sent)
