"""Sync state for the app: the state of each event, a snapshot of the whole outbox, and rolled-back events."""

from __future__ import annotations

import dataclasses
import enum
import uuid

from shared_schema import WorkOrderState, WorkOrderStatus


class EventState(str, enum.Enum):
    """State of one recorded event, as the app shows it."""

    PENDING = "pending"
    # The server accepted the event; no pull has brought the order's new state yet.
    ACCEPTED = "accepted"
    # A pulled state of the order includes the event.
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"
    # The server refused the request that carried the event (403), so the device rejected it itself.
    REJECTED_LOCALLY = "rejected_locally"


class Activity(str, enum.Enum):
    IDLE = "idle"
    SYNCING = "syncing"
    # The last attempt could not reach the server; events stay pending.
    OFFLINE = "offline"
    # The server requires a newer app; nothing is sent until the app is updated.
    BLOCKED = "blocked"
    # The last sync failed for another reason, named in `last_error`.
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class SyncStatus:
    """A snapshot of the sync state for the app's status bar."""

    activity: Activity
    pending_count: int
    rejected_count: int
    needs_review_count: int
    last_error: str | None
    last_successful_sync: str | None
    # The server's message while sync is blocked, or None.
    blocked_reason: str | None


@dataclasses.dataclass(frozen=True)
class Rollback:
    """An event that the device showed as applied and the server did not apply.

    `server_state` is the order as this device last pulled it (None when the
    device may no longer see the order). `server_status` and
    `server_version` come from the decision itself, so they are current even
    when no pull followed the push.
    """

    client_event_id: uuid.UUID
    work_order_id: str
    event_type: str
    reason_code: str
    message: str
    server_status: WorkOrderStatus | None
    server_version: int | None
    server_state: WorkOrderState | None
