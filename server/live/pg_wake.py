"""Wake-ups between server processes on one PostgreSQL, through LISTEN/NOTIFY.

A notification carries no data a subscriber reads: it only wakes the hubs of
the other processes, which then read the log themselves. A lost
notification delays an update until the hub's next poll, but the poll still delivers it.

One connection per process, outside the pool, listens on `CHANNEL` and also
sends this process's notifications. One task owns it: it sends pending
notifications, checks the connection with `SELECT 1` every `check_seconds`,
and opens a new connection when the old one fails or PostgreSQL terminates
it. After every (re)connect it wakes the hub, because notifications sent while
nobody listened are gone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger("csdp.live")

# Channels are per database, not per schema, so processes on other schemas of
# the same database wake this one too; that costs one empty read.
CHANNEL = "csdp_live"

_CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
MAX_RECONNECT_DELAY_SECONDS = 5.0
# Names the listening connection in pg_stat_activity, with the server's process id.
APPLICATION_NAME_PREFIX = "csdp-live-listener-"
QUERY_TIMEOUT_SECONDS = 5.0


class PostgresWakeListener:
    """The LISTEN connection of one process, checked and reopened by its own task."""

    def __init__(self, dsn: str, description: str, on_wake: Callable[[], None], *, check_seconds: float) -> None:
        self._dsn = dsn
        self._description = description
        self._on_wake = on_wake
        self._check_seconds = check_seconds
        self._signal = asyncio.Event()
        self._pending: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.backend_pid: int | None = None
        """The PostgreSQL backend of the listening connection, None while disconnected."""
        self.connects = 0
        """How many times the listening connection was opened."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-pg-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def publish(self, position: int) -> None:
        """Queue a notification for `position`; notifications queued before one is sent become one."""
        self._pending = position if self._pending is None else max(self._pending, position)
        self._signal.set()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=QUERY_TIMEOUT_SECONDS,
                    server_settings={"application_name": f"{APPLICATION_NAME_PREFIX}{os.getpid()}"},
                )
            except _CONNECTION_ERRORS as exc:
                log.warning("live_listener_connect_failed", database=self._description, error=str(exc), retry_in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)
                continue
            delay = 0.1
            try:
                await self._listen(connection)
            except _CONNECTION_ERRORS as exc:
                log.warning("live_listener_lost", database=self._description, backend_pid=self.backend_pid, error=str(exc))
            finally:
                self.backend_pid = None
                connection.terminate()

    async def _listen(self, connection: asyncpg.Connection) -> None:
        own_pid = connection.get_server_pid()

        def on_notification(_connection: object, pid: int, _channel: str, _payload: str) -> None:
            # This process's own notifications come back too; its hub is already awake.
            if pid != own_pid:
                self._on_wake()

        def on_termination(_connection: object) -> None:
            self._signal.set()

        connection.add_termination_listener(on_termination)
        await connection.add_listener(CHANNEL, on_notification)
        self.backend_pid = own_pid
        self.connects += 1
        log.info("live_listener_connected", database=self._description, backend_pid=own_pid, connects=self.connects)
        self._on_wake()
        while True:
            try:
                await asyncio.wait_for(self._signal.wait(), self._check_seconds)
            except asyncio.TimeoutError:
                pass
            self._signal.clear()
            if connection.is_closed():
                raise asyncpg.InterfaceError("PostgreSQL closed the listening connection")
            position, self._pending = self._pending, None
            if position is not None:
                try:
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, str(position), timeout=QUERY_TIMEOUT_SECONDS)
                except _CONNECTION_ERRORS:
                    # Sent again on the next connection, unless a later position replaces it.
                    self.publish(position)
                    raise
            else:
                await connection.fetchval("SELECT 1", timeout=QUERY_TIMEOUT_SECONDS)
