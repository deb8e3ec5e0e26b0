"""The SDK's entry point: record events offline, read the local state, sync with the server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from shared_schema import (
    Actor,
    DecisionStatus,
    EventBatch,
    EventDecision,
    ProposedEvent,
    ReasonCode,
    Role,
    WorkOrderState,
    decide,
)

from .attachments import AttachmentQueue
from .errors import SyncError
from .store import LocalStore, OutboxEntry
from .transport import TokenProvider, Transport

log = logging.getLogger("client_sdk")

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode

DecisionListener = Callable[[OutboxEntry], None]


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """Counts of one `sync()` round."""

    pushed: int
    accepted: int
    rejected: int
    needs_review: int
    pulled: int
    replays: int


class SyncClient:
    """A device's view of the work-order log, usable offline.

    The local state of an order is the last state confirmed by the server
    with this device's pending events replayed on top through the shared
    `decide` function, so the app shows its own work at once.
    """

    def __init__(
        self,
        path: str | Path,
        base_url: str,
        token_provider: TokenProvider | str,
        *,
        device_id: str,
        actor: Actor,
        batch_size: int = 100,
        pull_page_size: int = 500,
        http: httpx.Client | None = None,
        max_attempts: int = 5,
        initial_backoff: float = 0.2,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, got {batch_size}")
        if pull_page_size < 1:
            raise ValueError(f"pull_page_size must be 1 or more, got {pull_page_size}")
        provider = (lambda: token_provider) if isinstance(token_provider, str) else token_provider
        self.device_id = device_id
        self.actor = actor
        self.batch_size = batch_size
        self.pull_page_size = pull_page_size
        transport_options: dict[str, Any] = {
            "http": http,
            "max_attempts": max_attempts,
            "initial_backoff": initial_backoff,
            "max_backoff": max_backoff,
            "device_id": device_id,
        }
        if sleep is not None:
            transport_options["sleep"] = sleep
        # The transport checks base_url and the retry options before the file is opened.
        self.transport = Transport(base_url, provider, **transport_options)
        self.store = LocalStore(path)
        # Blobs have their own upload queue; events that reference one wait for it (client_sdk/attachments.py).
        self.attachments = AttachmentQueue(self.store, self.transport)
        self._listeners: list[DecisionListener] = []
        # One push or pull at a time per client. record() does not take this lock.
        self._sync_lock = threading.Lock()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()
        self.store.close()

    def add_listener(self, listener: DecisionListener) -> None:
        """Call `listener` with each outbox entry whose decision arrives."""
        self._listeners.append(listener)

    # -- recording ---------------------------------------------------------

    def record(
        self,
        work_order_id: str,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        occurred_at: dt.datetime | None = None,
        causation_id: uuid.UUID | None = None,
        correlation_id: str | None = None,
    ) -> OutboxEntry:
        """Record an event durably in the outbox and return it.

        `base_version` is the version of the order last confirmed by the
        server, from which the server judges how stale this device was. Raises
        ValueError for an envelope the server would reject as a whole request
        (an empty or over-long id or type, a naive `occurred_at`) and
        TypeError for a payload that cannot be encoded as JSON. Nothing is
        stored in either case.
        """
        confirmed = self.store.confirmed(work_order_id)
        draft = ProposedEvent(
            client_event_id=uuid.uuid4(),
            work_order_id=work_order_id,
            type=event_type,
            payload=payload or {},
            occurred_at=occurred_at or dt.datetime.now(dt.timezone.utc),
            base_version=confirmed.version if confirmed else 0,
            device_id=self.device_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        # Constructing a Struct checks no constraints. An envelope stored without
        # this check would fail every later read of the outbox and every push.
        try:
            event = _decode_proposal(msgspec.json.encode(draft))
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid event {event_type!r} for work order {work_order_id!r}: {exc}") from exc
        return self.store.append(event)

    # -- local state -------------------------------------------------------

    def work_order(self, work_order_id: str) -> WorkOrderState | None:
        return self._local_states(only=work_order_id).get(work_order_id)

    def work_orders(self) -> dict[str, WorkOrderState]:
        """Return the local state of every order on this device, confirmed or created offline."""
        return self._local_states()

    def my_work_orders(self) -> dict[str, WorkOrderState]:
        """Local state of the orders assigned to this device's engineer."""
        engineer_id = self.actor.engineer_id
        return {key: state for key, state in self._local_states().items() if state.engineer_id == engineer_id}

    def confirmed_work_orders(self) -> dict[str, WorkOrderState]:
        return self.store.all_confirmed()

    def _local_states(self, only: str | None = None) -> dict[str, WorkOrderState]:
        if only is None:
            states = self.store.all_confirmed()
        else:
            confirmed = self.store.confirmed(only)
            states = {only: confirmed} if confirmed else {}
        # Pending events, and accepted ones that no pull has confirmed yet (after
        # push() alone, or a sync whose pull failed), so the view never steps back.
        for entry in self.store.unconfirmed(only):
            event = entry.event
            # Optimistic view: apply the event as the server would if nothing
            # else had happened, and skip one the server would reject.
            outcome = decide(states.get(event.work_order_id), event, self.actor, event.occurred_at)
            if outcome.status is DecisionStatus.ACCEPTED and outcome.state is not None:
                states[event.work_order_id] = outcome.state
        return states

    # -- sync status -------------------------------------------------------

    def pending(self) -> list[OutboxEntry]:
        return self.store.pending()

    def pending_count(self) -> int:
        return self.store.pending_count()

    def outbox(self) -> list[OutboxEntry]:
        """Return every event recorded on this device, decided or not, in recording order."""
        return self.store.entries()

    def not_applied(self) -> list[OutboxEntry]:
        """Events the server rejected or sent to review, with their reasons."""
        return [
            entry
            for entry in self.store.entries()
            if entry.decision is not None and entry.decision.status is not DecisionStatus.ACCEPTED
        ]

    @property
    def cursor(self) -> str:
        return self.store.get_meta("cursor") or "0"

    @property
    def last_error(self) -> str | None:
        """The error of the last failed sync, or None when the last sync succeeded or none ran yet."""
        return self.store.get_meta("last_error") or None

    @property
    def last_successful_sync(self) -> str | None:
        return self.store.get_meta("last_successful_sync")

    # -- sync --------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push every pending event, then pull changes; raise SyncError when the server stays unreachable."""
        correlation_id = f"sync-{self.device_id}-{uuid.uuid4()}"
        with self._sync_lock:
            try:
                decisions = self._push_all(correlation_id)
                # Blobs go after the events they do not hold back, and the events they held go right after them.
                if self.attachments.upload_due(correlation_id).uploaded:
                    decisions.extend(self._push_all(correlation_id))
                pulled = self._pull_all(correlation_id)
            except Exception as exc:
                self.store.set_meta("last_error", f"{type(exc).__name__}: {exc}")
                log.warning("sync failed (correlation_id=%s): %s", correlation_id, exc)
                raise
            self.store.set_meta("last_successful_sync", dt.datetime.now(dt.timezone.utc).isoformat())
            self.store.set_meta("last_error", "")
        counts = {status: sum(d.status is status for d in decisions) for status in DecisionStatus}
        return SyncReport(
            pushed=len(decisions),
            accepted=counts[DecisionStatus.ACCEPTED],
            rejected=counts[DecisionStatus.REJECTED],
            needs_review=counts[DecisionStatus.NEEDS_REVIEW],
            pulled=pulled,
            replays=sum(d.replay for d in decisions),
        )

    def push(self) -> list[EventDecision]:
        with self._sync_lock:
            return self._push_all(f"push-{self.device_id}-{uuid.uuid4()}")

    def pull(self) -> int:
        with self._sync_lock:
            return self._pull_all(f"pull-{self.device_id}-{uuid.uuid4()}")

    def _push_all(self, correlation_id: str) -> list[EventDecision]:
        decisions: list[EventDecision] = []
        while True:
            # Only events pending when the batch is read are sent; one recorded
            # during the request stays pending for the next batch.
            batch = self.attachments.sendable(self.batch_size)
            if not batch:
                return decisions
            response = self.transport.push(EventBatch(events=[entry.event for entry in batch]), correlation_id)
            sent = {entry.event.client_event_id for entry in batch}
            decided = [decision for decision in response.decisions if decision.client_event_id in sent]
            if len(decided) != len(batch):
                raise SyncError(
                    f"the server response has {len(decided)} decisions for a batch of {len(batch)} events"
                )
            self._store_decisions(decided)
            decisions.extend(decided)

    def _pull_all(self, correlation_id: str) -> int:
        pulled = 0
        while True:
            page = self.transport.pull(self.cursor, self.pull_page_size, correlation_id)
            # An accepted event of this device seen in the feed settles its outbox
            # entry, for example when the push response was lost.
            own = [
                EventDecision(
                    client_event_id=event.client_event_id,
                    work_order_id=event.work_order_id,
                    status=DecisionStatus.ACCEPTED,
                    reason_code=ReasonCode.APPLIED,
                    message="The event was found accepted in the change feed.",
                    work_order_status=None,
                    work_order_version=event.stream_version,
                    decided_at=event.recorded_at,
                    event_id=event.event_id,
                    stream_version=event.stream_version,
                    global_position=event.global_position,
                )
                for event in page.events
                if event.device_id == self.device_id
            ]
            if own:
                self._store_decisions(own)
            self.store.store_page(page.work_orders, page.revoked, page.next_cursor)
            pulled += len(page.events)
            if not page.has_more:
                return pulled

    def _store_decisions(self, decisions: list[EventDecision]) -> None:
        for entry in self.store.store_decisions(decisions):
            for listener in self._listeners:
                try:
                    listener(entry)
                except Exception:  # noqa: BLE001 - a failing app callback must not stop the sync
                    log.exception("decision listener failed for client_event_id=%s", entry.event.client_event_id)


def engineer_actor(engineer_id: str, subject: str | None = None) -> Actor:
    """Build the actor of an engineer's tablet, as the server derives it from the token."""
    return Actor(subject=subject or engineer_id, role=Role.ENGINEER, engineer_id=engineer_id)
