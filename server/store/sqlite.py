"""Embedded event store on one SQLite file.

One connection serves the process. A lock serialises its use, and every call
runs in a worker thread so the event loop never blocks on disk. A batch is
one `BEGIN IMMEDIATE` transaction, and SQLite's single writer lock makes
stream versions and global positions gap-free and visible in commit order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import msgspec

from shared_schema import (
    Actor,
    ChangesPage,
    DecisionStatus,
    EventDecision,
    HeldReview,
    ProposedEvent,
    TimelineEntry,
    WorkOrderState,
)

from ..upcasting import decode_recorded_event
from ..ingest import ReviewKey, StoredDecision, causation_ids, plan_batch, review_keys
from .migrations import latest_version, migrations
from .audit import AuditPage, AuditQuery, DeniedRequest, audit_page, audit_select, audit_where
from .errors import SchemaOutdated, StoreError, StoreUnavailable, schema_mismatch
from .pages import changes_page, work_order_filters, work_order_page
from .reviews import ReviewPage, ReviewQuery, held_review, held_reviews_sql, review_page, review_queue_sql

SCHEMA_VERSION = latest_version("sqlite")
T = TypeVar("T")

_encode = msgspec.json.encode
_decode_decision = msgspec.json.Decoder(EventDecision).decode
_decode_state = msgspec.json.Decoder(WorkOrderState).decode
_decode_event = decode_recorded_event
_decode_timeline = msgspec.json.Decoder(TimelineEntry).decode


def _timestamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat() if value else None


def current_state_rows(states: Iterable[WorkOrderState]) -> list[tuple[object, ...]]:
    """Turn states into rows of `work_orders_current`, in its column order."""
    return [
        (
            state.work_order_id,
            state.status.value,
            state.version,
            state.engineer_id,
            state.priority.value,
            state.site_id,
            _timestamp(state.updated_at),
            _encode(state),
        )
        for state in states
    ]


def _split_statements(script: str) -> list[str]:
    """Split an SQL script into statements that `execute` accepts one at a time.

    `executescript` would commit the caller's transaction first, so the schema
    is run statement by statement. `sqlite3.complete_statement` keeps a
    trigger's `BEGIN ... END;` body whole.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    return statements


class SQLiteStore:
    """Event store, decisions and projections in a single SQLite file."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"sqlite:///{self.path}"

    def connection_use(self) -> tuple[int, int, int]:
        """Return (in use, idle, maximum) connections: the one connection is in use while a call holds its lock."""
        if self._connection is None:
            return 0, 0, 1
        in_use = 1 if self._lock.locked() else 0
        return in_use, 1 - in_use, 1

    # -- lifecycle -----------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        await asyncio.to_thread(self._open_sync, migrate)

    def _open_sync(self, migrate: bool) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the SQLite file {self.path}: {exc}") from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            self._enable_wal(connection)
            # FULL makes every commit durable across power loss, not only process crashes.
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
            version = self._schema_version(connection)
            if version < SCHEMA_VERSION and migrate:
                version = self._migrate(connection)
            if version != SCHEMA_VERSION:
                raise SchemaOutdated(schema_mismatch(self.description, version, SCHEMA_VERSION))
        except sqlite3.Error as exc:
            connection.close()
            raise StoreUnavailable(f"cannot open the SQLite file {self.path}: {exc}") from None
        except BaseException:
            # A store that failed to open stays closed, so no query runs on a half-set-up connection
            # or against a foreign schema.
            connection.close()
            raise
        self._connection = connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL mode, retrying while other connections hold locks, up to the busy timeout.

        SQLite returns SQLITE_BUSY without calling the busy handler when waiting
        could deadlock, as when several connections switch a new file to WAL at
        once, so `busy_timeout` alone does not cover this statement.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    @classmethod
    def _migrate(cls, connection: sqlite3.Connection) -> int:
        """Apply the pending migrations, each in one write transaction, and return the schema version.

        The version is read again under the write lock, because another
        process may have migrated the file since the first read.
        """
        version = 0
        for target, script in migrations("sqlite"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = cls._schema_version(connection)
                if version < target:
                    for statement in _split_statements(script):
                        connection.execute(statement)
                    connection.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (target, _timestamp(dt.datetime.now(dt.timezone.utc))),
                    )
                    version = target
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
        return version

    @staticmethod
    def _schema_version(connection: sqlite3.Connection) -> int:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if not exists:
            return 0
        row = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    async def close(self) -> None:
        def close_sync() -> None:
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(close_sync)

    async def schema_version(self) -> int:
        """Read the applied schema version from the open file."""
        return await self._run(self._schema_version)

    @property
    def expected_schema_version(self) -> int:
        return SCHEMA_VERSION

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._connection is None:
                    raise StoreUnavailable(f"the store {self.path} is closed")
                try:
                    return work(self._connection)
                except sqlite3.OperationalError as exc:
                    if self._connection.in_transaction:
                        self._connection.rollback()
                    if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                        raise StoreUnavailable(f"the database {self.path} is locked: {exc}") from exc
                    raise StoreError(f"SQLite failed on {self.path}: {exc}") from exc
                except BaseException:
                    if self._connection.in_transaction:
                        self._connection.rollback()
                    raise

        return await asyncio.to_thread(locked)

    # -- command side --------------------------------------------------------

    async def append_batch(
        self,
        actor: Actor,
        events: list[ProposedEvent],
        recorded_at: dt.datetime,
        skew_tolerance: dt.timedelta,
    ) -> list[EventDecision]:
        """Decide and record a batch in one transaction; return one decision per event, in order."""
        return await self._run(lambda db: self._append_batch_sync(db, actor, events, recorded_at, skew_tolerance))

    def _append_batch_sync(
        self,
        db: sqlite3.Connection,
        actor: Actor,
        events: list[ProposedEvent],
        recorded_at: dt.datetime,
        skew_tolerance: dt.timedelta,
    ) -> list[EventDecision]:
        db.execute("BEGIN IMMEDIATE")

        # Load everything the batch needs before deciding anything.
        stream_ids = sorted({event.work_order_id for event in events})
        states = self._load_states(db, stream_ids)
        client_ids = [str(event.client_event_id) for event in events]
        prior = {
            uuid.UUID(client_event_id): StoredDecision(fingerprint=fingerprint, decision=_decode_decision(decision))
            for client_event_id, fingerprint, decision in self._select_in(
                db,
                "SELECT client_event_id, fingerprint, decision FROM decisions WHERE subject = ? AND client_event_id IN ({})",
                [actor.subject],
                client_ids,
            )
        }
        causations = {
            uuid.UUID(client_event_id): DecisionStatus(status)
            for client_event_id, status in self._select_in(
                db,
                "SELECT client_event_id, status FROM decisions WHERE subject = ? AND client_event_id IN ({})",
                [actor.subject],
                [str(causation_id) for causation_id in causation_ids(events)],
            )
        }
        reviews = self._load_held_reviews(db, review_keys(events))
        last_position = db.execute("SELECT coalesce(max(global_position), 0) FROM events").fetchone()[0]
        positions = iter(range(last_position + 1, last_position + 1 + len(events)))

        plan = plan_batch(
            events, actor, recorded_at, skew_tolerance, states, prior, causations, lambda: next(positions), reviews
        )

        db.executemany(
            "INSERT INTO events (global_position, event_id, work_order_id, stream_version, type, client_event_id,"
            " actor, actor_role, device_id, occurred_at, effective_time, recorded_at, event)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    item.event.global_position,
                    str(item.event.event_id),
                    item.event.work_order_id,
                    item.event.stream_version,
                    item.event.type,
                    str(item.event.client_event_id),
                    item.event.actor,
                    item.event.actor_role,
                    item.event.device_id,
                    _timestamp(item.event.occurred_at),
                    _timestamp(item.event.effective_time),
                    _timestamp(item.event.recorded_at),
                    _encode(item.event),
                )
                for item in plan.events
            ],
        )
        db.executemany(
            "INSERT INTO event_audience (engineer_id, global_position) VALUES (?, ?)",
            [(engineer_id, item.event.global_position) for item in plan.events for engineer_id in item.audience],
        )
        db.executemany(
            "INSERT INTO decisions (subject, client_event_id, fingerprint, work_order_id, type, status, reason_code,"
            " actor_role, device_id, correlation_id, global_position, decided_at, proposal, decision)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    item.actor.subject,
                    str(item.proposal.client_event_id),
                    item.fingerprint,
                    item.proposal.work_order_id,
                    item.proposal.type,
                    item.decision.status.value,
                    item.decision.reason_code.value,
                    item.actor.role.value,
                    item.proposal.device_id,
                    item.proposal.correlation_id,
                    item.decision.global_position,
                    _timestamp(item.decision.decided_at),
                    _encode(item.proposal),
                    _encode(item.decision),
                )
                for item in plan.decisions
            ],
        )
        db.executemany(
            "INSERT INTO work_orders_current (work_order_id, status, version, engineer_id, priority, site_id,"
            " updated_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (work_order_id) DO UPDATE SET status = excluded.status, version = excluded.version,"
            " engineer_id = excluded.engineer_id, priority = excluded.priority, site_id = excluded.site_id,"
            " updated_at = excluded.updated_at, state = excluded.state",
            current_state_rows(plan.states.values()),
        )
        db.executemany(
            "INSERT INTO work_order_timeline (work_order_id, entry) VALUES (?, ?)",
            [(entry.work_order_id, _encode(entry)) for entry in plan.timeline],
        )
        db.execute("COMMIT")
        return plan.responses

    @classmethod
    def _load_states(cls, db: sqlite3.Connection, stream_ids: list[str]) -> dict[str, WorkOrderState]:
        rows = cls._select_in(db, "SELECT state FROM work_orders_current WHERE work_order_id IN ({})", [], stream_ids)
        states = [_decode_state(row[0]) for row in rows]
        return {state.work_order_id: state for state in states}

    @staticmethod
    def _load_held_reviews(db: sqlite3.Connection, keys: list[ReviewKey]) -> dict[ReviewKey, HeldReview]:
        """Load the decisions that the batch's `review_resolved` proposals name, with any recorded resolution."""
        if not keys:
            return {}
        pairs = "(SELECT value ->> 0 AS subject, value ->> 1 AS client_event_id FROM json_each(?)) AS ref"
        rows = db.execute(
            held_reviews_sql("sqlite", pairs), (_encode([[subject, str(key)] for subject, key in keys]),)
        ).fetchall()
        return dict(held_review(row) for row in rows)

    @staticmethod
    def _select_in(db: sqlite3.Connection, sql: str, leading: list[object], values: list[str]) -> list[tuple]:
        """Run `sql` with its `IN ({})` filled by `values`, in chunks below SQLite's variable limit."""
        rows: list[tuple] = []
        chunk_size = 900
        for start in range(0, len(values), chunk_size):
            chunk = values[start : start + chunk_size]
            placeholders = ", ".join("?" for _ in chunk)
            rows.extend(db.execute(sql.format(placeholders), [*leading, *chunk]).fetchall())
        return rows

    # -- query side ----------------------------------------------------------

    async def get_work_order(self, work_order_id: str) -> WorkOrderState | None:
        def read(db: sqlite3.Connection) -> WorkOrderState | None:
            row = db.execute("SELECT state FROM work_orders_current WHERE work_order_id = ?", (work_order_id,)).fetchone()
            return _decode_state(row[0]) if row else None

        return await self._run(read)

    async def list_work_orders(
        self,
        *,
        status: str | None = None,
        engineer_id: str | None = None,
        priority: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[WorkOrderState], str | None]:
        """Page through orders sorted by id; the second value is the cursor of the next page."""
        where, params = work_order_filters(
            lambda _: "?", status=status, engineer_id=engineer_id, priority=priority, after=after
        )
        sql = f"SELECT state FROM work_orders_current {where} ORDER BY work_order_id LIMIT ?"

        def read(db: sqlite3.Connection) -> list[WorkOrderState]:
            return [_decode_state(row[0]) for row in db.execute(sql, [*params, limit + 1]).fetchall()]

        return work_order_page(await self._run(read), limit)

    async def timeline(self, work_order_id: str) -> list[TimelineEntry]:
        def read(db: sqlite3.Connection) -> list[TimelineEntry]:
            rows = db.execute(
                "SELECT entry FROM work_order_timeline WHERE work_order_id = ? ORDER BY entry_id", (work_order_id,)
            ).fetchall()
            return [_decode_timeline(row[0]) for row in rows]

        return await self._run(read)

    async def changes_since(self, position: int, *, engineer_id: str | None, limit: int) -> ChangesPage:
        """Return accepted events after `position` in global order, with the states of their orders.

        `engineer_id` limits the feed to events that engineer may see; None
        returns every event.
        """

        def read(db: sqlite3.Connection) -> ChangesPage:
            if engineer_id is None:
                rows = db.execute(
                    "SELECT global_position, event FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?",
                    (position, limit + 1),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT e.global_position, e.event FROM event_audience a"
                    " JOIN events e ON e.global_position = a.global_position"
                    " WHERE a.engineer_id = ? AND a.global_position > ? ORDER BY a.global_position LIMIT ?",
                    (engineer_id, position, limit + 1),
                ).fetchall()
            events = [(row_position, _decode_event(raw)) for row_position, raw in rows]
            states = self._load_states(db, sorted({event.work_order_id for _, event in events}))
            return changes_page(events, states, position=position, limit=limit, engineer_id=engineer_id)

        return await self._run(read)

    # -- audit ---------------------------------------------------------------

    async def record_denied_requests(self, denied: list[DeniedRequest]) -> None:
        """Append denied requests in one transaction."""
        rows = [
            (
                _timestamp(item.denied_at),
                item.subject,
                int(item.subject_verified),
                item.role,
                item.device_id,
                item.correlation_id,
                item.method,
                item.path,
                item.status_code,
                item.reason,
                item.message,
            )
            for item in denied
        ]

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO denied_requests (denied_at, subject, subject_verified, role, device_id, correlation_id,"
                " method, path, status_code, reason, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")

        if rows:
            await self._run(write)

    async def audit(self, query: AuditQuery) -> AuditPage:
        """Page through decisions and denied requests in time order."""
        where, params = audit_where(query, lambda _: "?", _timestamp)
        sql = (
            f"SELECT * FROM ({audit_select(true='1', text_of=lambda column: column)}) AS audit {where}"
            " ORDER BY at, kind, id LIMIT ?"
        )

        def read(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            return db.execute(sql, [*params, query.limit + 1]).fetchall()

        return audit_page(await self._run(read), query.limit)

    async def list_reviews(self, query: ReviewQuery) -> ReviewPage:
        """Page through the unresolved NEEDS_REVIEW decisions, oldest first."""
        sql, params = review_queue_sql("sqlite", query, lambda _: "?", _timestamp)

        def read(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            return db.execute(sql, [*params, query.limit + 1]).fetchall()

        return review_page(await self._run(read), query.limit)

    async def head_position(self) -> int:
        """Return the global position of the last stored event, 0 for an empty log."""
        return await self._run(
            lambda db: db.execute("SELECT coalesce(max(global_position), 0) FROM events").fetchone()[0]
        )

    async def log_identity(self) -> tuple[str, int]:
        """Return the log's epoch and the last position it shares with the copy it was restored from."""
        row = await self._run(lambda db: db.execute("SELECT epoch, base_position FROM log_identity").fetchone())
        return row[0], int(row[1])

    async def count_events(self) -> int:
        return await self._run(lambda db: db.execute("SELECT count(*) FROM events").fetchone()[0])

    async def count_decisions(self) -> int:
        return await self._run(lambda db: db.execute("SELECT count(*) FROM decisions").fetchone()[0])
