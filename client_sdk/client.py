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
    SCHEMA_VERSION,
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
from shared_schema.protocol import SyncSignal

from . import testpoints, version
from .attachments import AttachmentQueue
from .errors import RequestRejected, ResetRequired, ServerUnreachable, SyncError, UpgradeRequired
from .locking import FileSyncLock
from .status import Activity, EventState, Rollback, SyncStatus
from .store import REJECTED_LOCALLY, LocalRejection, LocalStore, OutboxEntry
from .transport import TokenProvider, Transport
from .validation import check_payload

log = logging.getLogger("client_sdk")

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode

DecisionListener = Callable[[OutboxEntry], None]
RollbackListener = Callable[[Rollback], None]
StatusListener = Callable[[SyncStatus], None]
RecordListener = Callable[[OutboxEntry], None]

_UPGRADE_SIGNALS = (SyncSignal.UNSUPPORTED_PROTOCOL_VERSION.value, SyncSignal.UNSUPPORTED_SCHEMA_VERSION.value)

_EVENT_STATES = {
    "PENDING": EventState.PENDING,
    DecisionStatus.REJECTED.value: EventState.REJECTED,
    DecisionStatus.NEEDS_REVIEW.value: EventState.NEEDS_REVIEW,
    REJECTED_LOCALLY: EventState.REJECTED_LOCALLY,
}


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """Counts of one `sync()` round."""

    pushed: int
    accepted: int
    rejected: int
    needs_review: int
    pulled: int
    replays: int
    # Events marked rejected on the device: those of a batch the server rejected
    # with 403, and an event that got 413 when sent alone.
    rejected_locally: int = 0
    # True when the server asked for a reset and the device pulled again from cursor 0.
    reset: bool = False


class SyncClient:
    """A device's view of the work-order log, usable offline.

    `token_provider` returns the bearer token for each request, and
    `token_refresher`, when given, returns a new one after a 401. Without a
    refresher the provider is called again, so a provider that renews an
    expired token on its own needs no refresher.

    The local state of an order is the last state confirmed by the server
    with this device's unconfirmed events replayed on top through the shared
    `decide` function, so the app shows its own work at once. The view is
    rebuilt after every push and pull, and whenever another connection has
    written to the file.
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
        lock_timeout: float = 60.0,
        token_refresher: TokenProvider | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more, got {batch_size}")
        if pull_page_size < 1:
            raise ValueError(f"pull_page_size must be 1 or more, got {pull_page_size}")
        if lock_timeout <= 0:
            raise ValueError(f"lock_timeout must be more than 0 seconds, got {lock_timeout}")
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
            "token_refresher": token_refresher,
        }
        if sleep is not None:
            transport_options["sleep"] = sleep
        # The transport checks base_url and the retry options before the file is opened.
        self.transport = Transport(base_url, provider, **transport_options)
        self.store = LocalStore(path)
        # Blobs have their own upload queue; events that reference one wait for it (client_sdk/attachments.py).
        self.attachments = AttachmentQueue(self.store, self.transport)
        self._decision_listeners: list[DecisionListener] = []
        self._rollback_listeners: list[RollbackListener] = []
        self._status_listeners: list[StatusListener] = []
        self._record_listeners: list[RecordListener] = []
        # One push or pull at a time per client, and per file across processes.
        # record() takes neither lock.
        self._sync_lock = threading.Lock()
        self._file_lock = FileSyncLock(self.store.path, timeout=lock_timeout)
        self._activity = Activity.IDLE
        self._view_lock = threading.Lock()
        self._view: dict[str, WorkOrderState] | None = None
        self._view_key: tuple[int, int] | None = None

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()
        self.store.close()

    # -- listeners ---------------------------------------------------------

    def add_listener(self, listener: DecisionListener) -> None:
        """Call `listener` with each outbox entry whose decision arrives."""
        self._decision_listeners.append(listener)

    def on_rollback(self, listener: RollbackListener) -> None:
        """Call `listener` for each event the server rejected or held for review, after the sync that learned it."""
        self._rollback_listeners.append(listener)

    def on_status(self, listener: StatusListener) -> None:
        """Call `listener` with a new SyncStatus when a sync starts or ends and when an event is recorded."""
        self._status_listeners.append(listener)

    def on_record(self, listener: RecordListener) -> None:
        """Call `listener` with each entry right after it is stored, for example to wake a background sync."""
        self._record_listeners.append(listener)

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
        (an empty or over-long id or type, a naive `occurred_at`), InvalidEvent
        (a ValueError) for an unknown event type or a payload that does not
        match its type's schema, and TypeError for a payload that cannot be
        encoded as JSON. Nothing is stored in any of these cases.
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
            schema_version=SCHEMA_VERSION,
        )
        # Constructing a Struct checks no constraints. An envelope stored without
        # this check would fail every later read of the outbox and every push.
        try:
            event = _decode_proposal(msgspec.json.encode(draft))
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid event {event_type!r} for work order {work_order_id!r}: {exc}") from exc
        check_payload(event)
        entry = self.store.append(event)
        self._notify(self._record_listeners, entry, "record")
        self._publish_status()
        return entry

    # -- local state -------------------------------------------------------

    def work_order(self, work_order_id: str) -> WorkOrderState | None:
        return self._local_view().get(work_order_id)

    def work_orders(self) -> dict[str, WorkOrderState]:
        """Return the local state of every order on this device, confirmed or created offline."""
        return dict(self._local_view())

    def my_work_orders(self) -> dict[str, WorkOrderState]:
        """Local state of the orders assigned to this device's engineer."""
        engineer_id = self.actor.engineer_id
        return {key: state for key, state in self._local_view().items() if state.engineer_id == engineer_id}

    def confirmed_work_orders(self) -> dict[str, WorkOrderState]:
        return self.store.all_confirmed()

    def _local_view(self) -> dict[str, WorkOrderState]:
        # data_version changes when another connection commits and write_count when this one does.
        key = (self.store.data_version(), self.store.write_count)
        with self._view_lock:
            if self._view is None or self._view_key != key:
                self._view = self._build_view()
                self._view_key = key
            return self._view

    def _rebuild_view(self) -> None:
        with self._view_lock:
            self._view = None

    def _build_view(self) -> dict[str, WorkOrderState]:
        states = self.store.all_confirmed()
        # Pending events, and accepted ones that no pull has confirmed yet (after
        # push() alone, or a sync whose pull failed), so the view never steps back.
        for entry in self.store.unconfirmed():
            event = entry.event
            # Optimistic view: apply the event as the server would if nothing
            # else had happened, and skip one the server would reject.
            # NOTE: the SDK has no upcasters, so an event recorded by an older SDK
            # in an older payload layout is skipped here until the server decides it.
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
        """Events the server rejected or sent to review, and events rejected locally after a 403 or 413, with their reasons."""
        return [
            entry
            for entry in self.store.entries()
            if entry.status == REJECTED_LOCALLY
            or (entry.decision is not None and entry.decision.status is not DecisionStatus.ACCEPTED)
        ]

    def event_state(self, client_event_id: uuid.UUID) -> EventState | None:
        """Return the state of one recorded event, or None for an id this device did not record."""
        entry = self.store.entry(client_event_id)
        return self._event_state(entry) if entry else None

    def event_states(self) -> dict[uuid.UUID, EventState]:
        """Return the state of every recorded event, by client_event_id."""
        confirmed = self.store.all_confirmed()
        return {entry.event.client_event_id: self._event_state(entry, confirmed) for entry in self.store.entries()}

    def _event_state(self, entry: OutboxEntry, confirmed: dict[str, WorkOrderState] | None = None) -> EventState:
        known = _EVENT_STATES.get(entry.status)
        if known is not None:
            return known
        if confirmed is None:
            state = self.store.confirmed(entry.event.work_order_id)
        else:
            state = confirmed.get(entry.event.work_order_id)
        stream_version = entry.decision.stream_version if entry.decision else None
        if state is not None and stream_version is not None and state.version >= stream_version:
            return EventState.CONFIRMED
        return EventState.ACCEPTED

    def status(self) -> SyncStatus:
        counts = self.store.status_counts()
        blocked = self.store.get_meta("blocked_reason") or None
        activity = self._activity
        if blocked and not self._block_lifted():
            activity = Activity.BLOCKED
        return SyncStatus(
            activity=activity,
            pending_count=counts.get("PENDING", 0),
            rejected_count=counts.get(DecisionStatus.REJECTED.value, 0) + counts.get(REJECTED_LOCALLY, 0),
            needs_review_count=counts.get(DecisionStatus.NEEDS_REVIEW.value, 0),
            last_error=self.last_error,
            last_successful_sync=self.last_successful_sync,
            blocked_reason=blocked if activity is Activity.BLOCKED else None,
        )

    @property
    def cursor(self) -> str:
        return self.store.get_meta("cursor") or "0"

    @property
    def log_epoch(self) -> str | None:
        """The epoch of the server's log this device last synced with, None before the first sync."""
        return self.store.get_meta("log_epoch") or None

    def report_error(self, message: str) -> None:
        """Show `message` as `last_error` in the status, for a failure outside sync such as a stopped live stream."""
        self.store.set_meta("last_error", message)
        self._activity = Activity.FAILED
        self._publish_status()

    def _remember_epoch(self, epoch: str | None) -> None:
        if epoch and epoch != self.log_epoch:
            self.store.set_meta("log_epoch", epoch)

    @property
    def last_error(self) -> str | None:
        """The error of the last failed sync, or None when the last sync succeeded or none ran yet."""
        return self.store.get_meta("last_error") or None

    @property
    def last_successful_sync(self) -> str | None:
        return self.store.get_meta("last_successful_sync")

    def retry_blocked(self) -> None:
        """Allow sync again after an UpgradeRequired, for example once the server itself was updated."""
        self.store.set_meta("blocked_reason", "")
        self.store.set_meta("blocked_sdk_version", "")
        self._publish_status()

    def _block_lifted(self) -> bool:
        """Return True when the app now runs another SDK version than the one the server turned away."""
        return self.store.get_meta("blocked_sdk_version") != version.SDK_VERSION

    # -- sync --------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push every pending event, then pull changes.

        Raises ServerUnreachable when the server stays unreachable,
        UpgradeRequired when the server needs a newer app, and SyncError for
        other failures. Recorded events stay in the outbox in every case.
        """
        correlation_id = f"sync-{self.device_id}-{uuid.uuid4()}"
        rollbacks: list[OutboxEntry] = []
        with self._sync_lock, self._file_lock:
            self._start(correlation_id)
            reset = False
            decisions: list[EventDecision] = []
            rejected_locally = 0
            try:
                try:
                    decisions, rejected_locally = self._push_with_blobs(correlation_id, rollbacks)
                    pulled = self._pull_all(correlation_id)
                except ResetRequired as signal:
                    # After a reset the cursor is 0, and the server never signals a reset for cursor 0.
                    self._reset(signal, correlation_id)
                    reset = True
                    more, more_rejected = self._push_with_blobs(correlation_id, rollbacks)
                    decisions += more
                    rejected_locally += more_rejected
                    pulled = self._pull_all(correlation_id)
            except Exception as exc:
                self._fail(exc, correlation_id)
                raise
            finally:
                self._rebuild_view()
                self._deliver_rollbacks(rollbacks)
            self._succeed(correlation_id)
        counts = {status: sum(d.status is status for d in decisions) for status in DecisionStatus}
        return SyncReport(
            pushed=len(decisions),
            accepted=counts[DecisionStatus.ACCEPTED],
            rejected=counts[DecisionStatus.REJECTED],
            needs_review=counts[DecisionStatus.NEEDS_REVIEW],
            pulled=pulled,
            replays=sum(d.replay for d in decisions),
            rejected_locally=rejected_locally,
            reset=reset,
        )

    def push(self) -> list[EventDecision]:
        """Push every pending event without pulling; after a reset signal, drop the confirmed states and push again."""
        correlation_id = f"push-{self.device_id}-{uuid.uuid4()}"
        rollbacks: list[OutboxEntry] = []
        with self._sync_lock, self._file_lock:
            self._check_not_blocked()
            try:
                try:
                    decisions, _ = self._push_all(correlation_id, rollbacks)
                except ResetRequired as signal:
                    self._reset(signal, correlation_id)
                    decisions, _ = self._push_all(correlation_id, rollbacks)
            finally:
                self._rebuild_view()
                self._deliver_rollbacks(rollbacks)
            return decisions

    def pull(self) -> int:
        """Pull changes; after a reset signal, drop the confirmed states and pull again from cursor 0."""
        correlation_id = f"pull-{self.device_id}-{uuid.uuid4()}"
        with self._sync_lock, self._file_lock:
            self._check_not_blocked()
            try:
                return self._pull_all(correlation_id)
            except ResetRequired as signal:
                self._reset(signal, correlation_id)
                return self._pull_all(correlation_id)
            finally:
                self._rebuild_view()

    def _start(self, correlation_id: str) -> None:
        self._check_not_blocked()
        self._activity = Activity.SYNCING
        log.info("sync started (device_id=%s, correlation_id=%s)", self.device_id, correlation_id)
        self._publish_status()

    def _succeed(self, correlation_id: str) -> None:
        self.store.set_meta("last_successful_sync", dt.datetime.now(dt.timezone.utc).isoformat())
        self.store.set_meta("last_error", "")
        self._activity = Activity.IDLE
        log.info("sync finished (device_id=%s, correlation_id=%s)", self.device_id, correlation_id)
        self._publish_status()

    def _fail(self, exc: Exception, correlation_id: str) -> None:
        self.store.set_meta("last_error", f"{type(exc).__name__}: {exc}")
        if isinstance(exc, ServerUnreachable):
            self._activity = Activity.OFFLINE
        elif isinstance(exc, UpgradeRequired):
            self._activity = Activity.BLOCKED
        else:
            self._activity = Activity.FAILED
        log.warning("sync failed (device_id=%s, correlation_id=%s): %s", self.device_id, correlation_id, exc)
        self._publish_status()

    def _check_not_blocked(self) -> None:
        reason = self.store.get_meta("blocked_reason")
        if not reason:
            return
        if self._block_lifted():
            log.info("sync unblocked: the SDK version changed to %s", version.SDK_VERSION)
            self.store.set_meta("blocked_reason", "")
            return
        raise UpgradeRequired(reason)

    def _block(self, exc: RequestRejected, correlation_id: str) -> UpgradeRequired:
        self.store.set_meta("blocked_reason", exc.message)
        self.store.set_meta("blocked_sdk_version", version.SDK_VERSION)
        log.warning(
            "sync blocked until the app is updated (device_id=%s, correlation_id=%s, reason=%s): %s",
            self.device_id,
            correlation_id,
            exc.reason,
            exc.message,
        )
        return UpgradeRequired(exc.message)

    def _push_with_blobs(
        self, correlation_id: str, rollbacks: list[OutboxEntry]
    ) -> tuple[list[EventDecision], int]:
        """Push what is free to go, upload due blobs, then push the events those blobs released."""
        decisions, rejected_locally = self._push_all(correlation_id, rollbacks)
        if self.attachments.upload_due(correlation_id).uploaded:
            more, more_rejected = self._push_all(correlation_id, rollbacks)
            decisions += more
            rejected_locally += more_rejected
        return decisions, rejected_locally

    def _push_all(self, correlation_id: str, rollbacks: list[OutboxEntry]) -> tuple[list[EventDecision], int]:
        decisions: list[EventDecision] = []
        rejected_locally = 0
        limit = self.batch_size
        while True:
            # Only events pending when the batch is read are sent; one recorded
            # during the request stays pending for the next batch.
            batch = self.attachments.sendable(limit)
            if not batch:
                return decisions, rejected_locally
            testpoints.reach(testpoints.BEFORE_SEND)
            try:
                response, epoch = self.transport.push(
                    EventBatch(events=[entry.event for entry in batch]),
                    correlation_id,
                    cursor=self.cursor,
                    epoch=self.log_epoch,
                )
            except RequestRejected as exc:
                if exc.reason == SyncSignal.RESET_REQUIRED.value:
                    raise _reset_signal(exc) from exc
                if exc.reason in _UPGRADE_SIGNALS or exc.status_code == 426:
                    raise self._block(exc, correlation_id) from exc
                if exc.status_code == 413 and len(batch) > 1:
                    # Halve the batch until the event over the server's body limit goes alone.
                    limit = len(batch) // 2
                    log.info(
                        "server rejected a batch of %d events with HTTP 413, sending batches of %d (device_id=%s, correlation_id=%s)",
                        len(batch),
                        limit,
                        self.device_id,
                        correlation_id,
                    )
                    continue
                if exc.status_code not in (403, 413):
                    raise
                if exc.status_code == 413:
                    limit = self.batch_size
                rejected = self._reject_locally(batch, exc, correlation_id)
                rollbacks.extend(rejected)
                rejected_locally += len(rejected)
                continue
            testpoints.reach(testpoints.AFTER_SEND)
            self._remember_epoch(epoch)
            sent = {entry.event.client_event_id for entry in batch}
            decided = [decision for decision in response.decisions if decision.client_event_id in sent]
            if len(decided) != len(batch):
                raise SyncError(
                    f"the server response has {len(decided)} decisions for a batch of {len(batch)} events"
                )
            changed = self._store_decisions(decided)
            rollbacks.extend(entry for entry in changed if entry.decision and entry.decision.status is not DecisionStatus.ACCEPTED)
            decisions.extend(decided)
            testpoints.reach(testpoints.AFTER_STORE)

    def _reject_locally(self, batch: list[OutboxEntry], exc: RequestRejected, correlation_id: str) -> list[OutboxEntry]:
        default_reason = "payload_too_large" if exc.status_code == 413 else "forbidden"
        rejection = LocalRejection(reason=exc.reason or default_reason, message=exc.message, http_status=exc.status_code)
        changed = self.store.reject_locally([entry.event.client_event_id for entry in batch], rejection)
        log.warning(
            "server rejected a push with HTTP %d, so %d events are marked rejected (device_id=%s, correlation_id=%s, reason=%s)",
            exc.status_code,
            len(changed),
            self.device_id,
            correlation_id,
            rejection.reason,
        )
        self._notify(self._decision_listeners, changed, "decision")
        return changed

    def _pull_all(self, correlation_id: str) -> int:
        pulled = 0
        while True:
            try:
                page, epoch = self.transport.pull(self.cursor, self.pull_page_size, correlation_id, epoch=self.log_epoch)
            except RequestRejected as exc:
                if exc.reason == SyncSignal.RESET_REQUIRED.value:
                    raise _reset_signal(exc) from exc
                if exc.reason in _UPGRADE_SIGNALS or exc.status_code == 426:
                    raise self._block(exc, correlation_id) from exc
                raise
            self._remember_epoch(epoch)
            # This device's accepted events, found in the feed by client_event_id,
            # settle their outbox entries, for example when the push response was lost.
            waiting = self.store.pending_ids([event.client_event_id for event in page.events])
            states = {state.work_order_id: state for state in page.work_orders}
            own = [
                EventDecision(
                    client_event_id=event.client_event_id,
                    work_order_id=event.work_order_id,
                    status=DecisionStatus.ACCEPTED,
                    reason_code=ReasonCode.APPLIED,
                    message="The event was found accepted in the change feed.",
                    work_order_status=states[event.work_order_id].status if event.work_order_id in states else None,
                    work_order_version=event.stream_version,
                    decided_at=event.recorded_at,
                    event_id=event.event_id,
                    stream_version=event.stream_version,
                    global_position=event.global_position,
                )
                for event in page.events
                if event.client_event_id in waiting
            ]
            if own:
                self._store_decisions(own)
            self.store.store_page(page.work_orders, page.revoked, page.next_cursor)
            pulled += len(page.events)
            if not page.has_more:
                return pulled

    def _reset(self, signal: ResetRequired, correlation_id: str) -> None:
        requeued = self.store.reset_read_model(signal.head, signal.epoch)
        log.warning(
            "server asked for a reset; dropped the confirmed states, pulling from cursor 0 and sending %d lost"
            " accepted events again (device_id=%s, correlation_id=%s, server_head=%d, log_epoch=%s)",
            requeued,
            self.device_id,
            correlation_id,
            signal.head,
            signal.epoch,
        )

    def _store_decisions(self, decisions: list[EventDecision]) -> list[OutboxEntry]:
        changed = self.store.store_decisions(decisions)
        self._notify(self._decision_listeners, changed, "decision")
        return changed

    def _deliver_rollbacks(self, entries: list[OutboxEntry]) -> None:
        rollbacks = [self._rollback(entry) for entry in entries]
        self._notify(self._rollback_listeners, rollbacks, "rollback")

    def _rollback(self, entry: OutboxEntry) -> Rollback:
        event = entry.event
        if entry.decision is not None:
            reason_code = entry.decision.reason_code.value
            message = entry.decision.message
            server_status = entry.decision.work_order_status
            server_version: int | None = entry.decision.work_order_version
        else:
            rejection = entry.local_rejection
            reason_code = rejection.reason if rejection else "forbidden"
            message = rejection.message if rejection else ""
            server_status = None
            server_version = None
        return Rollback(
            client_event_id=event.client_event_id,
            work_order_id=event.work_order_id,
            event_type=event.type,
            reason_code=reason_code,
            message=message,
            server_status=server_status,
            server_version=server_version,
            server_state=self.store.confirmed(event.work_order_id),
        )

    def _publish_status(self) -> None:
        if self._status_listeners:
            self._notify(self._status_listeners, [self.status()], "status")

    def _notify(self, listeners: list[Callable[[Any], None]], items: Any, kind: str) -> None:
        if not listeners:
            return
        for item in items if isinstance(items, list) else [items]:
            for listener in listeners:
                try:
                    listener(item)
                except Exception:  # noqa: BLE001 - a failing app callback must not stop the sync
                    log.exception("%s listener failed (device_id=%s)", kind, self.device_id)


def _reset_signal(exc: RequestRejected) -> ResetRequired:
    """Build a ResetRequired from a 409 body; a missing or invalid `head` counts as 0, which queues every accepted event again."""
    body = exc.body if isinstance(exc.body, dict) else {}
    head, epoch = body.get("head"), body.get("epoch")
    return ResetRequired(
        exc.message,
        int(head) if isinstance(head, str) and head.isdigit() else 0,
        epoch if isinstance(epoch, str) and epoch else None,
    )


def engineer_actor(engineer_id: str, subject: str | None = None) -> Actor:
    """Build the actor of an engineer's tablet, as the server derives it from the token."""
    return Actor(subject=subject or engineer_id, role=Role.ENGINEER, engineer_id=engineer_id)
