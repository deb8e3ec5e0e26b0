"""Live updates: the per-process hub that fans accepted events out to SSE and WebSocket subscribers."""

from __future__ import annotations

from ..config import Settings
from ..store import PostgresStore, Store
from .hub import LiveHub
from .pg_wake import PostgresWakeListener


def create_live_hub(settings: Settings, store: Store) -> tuple[LiveHub, PostgresWakeListener | None]:
    """Build the hub of this process and, on PostgreSQL, the listener that wakes it for other processes' appends."""
    hub = LiveHub(
        store,
        poll_seconds=settings.live_poll_seconds,
        heartbeat_seconds=settings.live_heartbeat_seconds,
        buffer_size=settings.live_buffer_messages,
    )
    if not isinstance(store, PostgresStore):
        # Appends of this process wake the hub directly, and the poll finds those
        # of any other process on the same SQLite file.
        return hub, None
    listener = PostgresWakeListener(
        store.dsn, store.description, hub.wake, check_seconds=settings.live_listener_check_seconds
    )
    hub.set_announcer(listener.publish)
    return hub, listener


__all__ = ["LiveHub", "PostgresWakeListener", "create_live_hub"]
