"""The device's local SQLite file: outbox of proposed events, confirmed states, sync cursor.

Every write is one `BEGIN IMMEDIATE` transaction committed before the call
returns, with `synchronous=FULL`, so an event the app has recorded survives
the process being killed at any point. The file is in WAL mode with a busy
timeout, so an app thread, a sync thread and another process can share it.
The layout is versioned by the numbered migrations in `migrations.py`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import sqlite_utils

from shared_schema import DecisionStatus, EventDecision, ProposedEvent, WorkOrderState

from .migrations import migrate

PENDING = "PENDING"
# Status of an event that the device marked rejected itself, because the server
# refused the whole request that carried it (403). The reason is in `local_rejection`.
REJECTED_LOCALLY = "REJECTED_LOCALLY"

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode
_decode_state = msgspec.json.Decoder(WorkOrderState).decode
_decode_decision = msgspec.json.Decoder(EventDecision).decode


class LocalRejection(msgspec.Struct, kw_only=True):
    """Why the device marked an event rejected without a decision: the error `reason` and `message` of a 403."""

    reason: str
    message: str
    http_status: int


_decode_rejection = msgspec.json.Decoder(LocalRejection).decode

_ENTRY_COLUMNS = "sequence, event, status, decision, local_rejection"


class OutboxEntry(msgspec.Struct, kw_only=True):
    """One event recorded on this device, with the server's decision once it is known."""

    sequence: int
    event: ProposedEvent
    status: str
    decision: EventDecision | None = None
    local_rejection: LocalRejection | None = None

    @property
    def pending(self) -> bool:
        return self.status == PENDING


class LocalStore:
    """Thread-safe access to the device's SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every transaction below starts with an explicit
        # BEGIN IMMEDIATE, which takes the write lock up front. A deferred
        # transaction that upgrades to a write can fail with SQLITE_BUSY at once
        # in WAL mode, without waiting for the busy timeout.
        connection = sqlite3.connect(self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(connection)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        self._connection = connection
        self._lock = threading.RLock()
        self._transaction_depth = 0
        # Commits through this object; PRAGMA data_version counts those of other connections.
        self.write_count = 0
        try:
            self.layout_version_found = migrate(connection)
        except BaseException:
            connection.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """Run the block in one BEGIN IMMEDIATE transaction; a nested call joins the outer one."""
        with self._lock:
            # The lock is reentrant, so only the thread that opened the transaction gets here while it is open.
            if self._transaction_depth:
                self._transaction_depth += 1
                try:
                    yield self.db
                finally:
                    self._transaction_depth -= 1
                return
            self._connection.execute("BEGIN IMMEDIATE")
            self._transaction_depth = 1
            try:
                yield self.db
            except BaseException:
                self._transaction_depth = 0
                self._connection.execute("ROLLBACK")
                raise
            self._transaction_depth = 0
            self._connection.execute("COMMIT")
            self.write_count += 1

    def data_version(self) -> int:
        """Return a number that changes when another connection commits to the file."""
        with self._lock:
            return self._connection.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- outbox ------------------------------------------------------------

    def append(self, event: ProposedEvent) -> OutboxEntry:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO outbox (client_event_id, work_order_id, status, event, recorded_at) VALUES (?, ?, ?, ?, ?)",
                [
                    str(event.client_event_id),
                    event.work_order_id,
                    PENDING,
                    msgspec.json.encode(event).decode(),
                    dt.datetime.now(dt.timezone.utc).isoformat(),
                ],
            )
            return OutboxEntry(sequence=cursor.lastrowid, event=event, status=PENDING)

    def pending(self, limit: int | None = None) -> list[OutboxEntry]:
        sql = f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE status = ? ORDER BY sequence"
        params: list[object] = [PENDING]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        return [self._entry(row) for row in rows]

    def unconfirmed(self, work_order_id: str | None = None) -> list[OutboxEntry]:
        """Return pending entries and accepted ones newer than their order's confirmed state, in recording order.

        An accepted entry stays here until a pull stores a state of its order
        at or after the entry's `stream_version`.
        """
        sql = (
            "SELECT o.sequence, o.event, o.status, o.decision, o.local_rejection FROM outbox o"
            " LEFT JOIN confirmed_work_orders c ON c.work_order_id = o.work_order_id"
            " WHERE (o.status = ? OR (o.status = ?"
            " AND json_extract(o.decision, '$.stream_version') > coalesce(c.version, 0)))"
        )
        params: list[object] = [PENDING, DecisionStatus.ACCEPTED.value]
        if work_order_id is not None:
            sql += " AND o.work_order_id = ?"
            params.append(work_order_id)
        sql += " ORDER BY o.sequence"
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        return [self._entry(row) for row in rows]

    def entries(self) -> list[OutboxEntry]:
        with self._lock:
            rows = self.db.execute(f"SELECT {_ENTRY_COLUMNS} FROM outbox ORDER BY sequence").fetchall()
        return [self._entry(row) for row in rows]

    def entry(self, client_event_id: uuid.UUID) -> OutboxEntry | None:
        with self._lock:
            row = self.db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE client_event_id = ?", [str(client_event_id)]
            ).fetchone()
        return self._entry(row) if row else None

    def pending_ids(self, client_event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Return the ids among `client_event_ids` that name pending entries of this outbox."""
        if not client_event_ids:
            return set()
        found: set[uuid.UUID] = set()
        # Chunks stay below SQLite's default limit of host parameters.
        for start in range(0, len(client_event_ids), 500):
            chunk = [str(value) for value in client_event_ids[start : start + 500]]
            marks = ", ".join("?" for _ in chunk)
            with self._lock:
                rows = self.db.execute(
                    f"SELECT client_event_id FROM outbox WHERE status = ? AND client_event_id IN ({marks})",
                    [PENDING, *chunk],
                ).fetchall()
            found.update(uuid.UUID(row[0]) for row in rows)
        return found

    def pending_count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT count(*) FROM outbox WHERE status = ?", [PENDING]).fetchone()[0]

    def store_decisions(self, decisions: list[EventDecision]) -> list[OutboxEntry]:
        """Record decisions for pending entries; return the entries that changed.

        An entry that already has a decision keeps it, so a decision learned
        twice (a retried push, a pull after a lost response) is stored once.
        """
        changed: list[OutboxEntry] = []
        with self.transaction() as db:
            for decision in decisions:
                cursor = db.execute(
                    "UPDATE outbox SET status = ?, decision = ? WHERE client_event_id = ? AND status = ?",
                    [
                        decision.status.value,
                        msgspec.json.encode(decision).decode(),
                        str(decision.client_event_id),
                        PENDING,
                    ],
                )
                if cursor.rowcount:
                    row = db.execute(
                        f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE client_event_id = ?",
                        [str(decision.client_event_id)],
                    ).fetchone()
                    changed.append(self._entry(row))
        return changed

    def reject_locally(self, client_event_ids: list[uuid.UUID], rejection: LocalRejection) -> list[OutboxEntry]:
        """Mark pending entries rejected without a server decision; return the entries that changed."""
        changed: list[OutboxEntry] = []
        encoded = msgspec.json.encode(rejection).decode()
        with self.transaction() as db:
            for client_event_id in client_event_ids:
                cursor = db.execute(
                    "UPDATE outbox SET status = ?, local_rejection = ? WHERE client_event_id = ? AND status = ?",
                    [REJECTED_LOCALLY, encoded, str(client_event_id), PENDING],
                )
                if cursor.rowcount:
                    row = db.execute(
                        f"SELECT {_ENTRY_COLUMNS} FROM outbox WHERE client_event_id = ?", [str(client_event_id)]
                    ).fetchone()
                    changed.append(self._entry(row))
        return changed

    def status_counts(self) -> dict[str, int]:
        """Count outbox entries by status."""
        with self._lock:
            rows = self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        return {status: count for status, count in rows}

    def reset_read_model(self, head: int, epoch: str | None = None) -> int:
        """Drop the confirmed states and the cursor, and queue again the accepted events the server lost.

        `head` is the last global position the server's log shares with the
        log this device synced from. An accepted event with a later position
        cannot be in the server's log any more (it was restored from an older
        copy), so its entry goes back to PENDING and is sent again under its
        original client_event_id. Rejected and review decisions stay, because
        they were shown to the user as final. `epoch` is the server's log
        epoch, stored for the next requests, and None deletes the stored one. Returns
        the number of entries queued again.
        """
        with self.transaction() as db:
            db.execute("DELETE FROM confirmed_work_orders")
            self._set_meta(db, "cursor", "0")
            self._set_meta(db, "log_epoch", epoch or "")
            cursor = db.execute(
                "UPDATE outbox SET status = ?, decision = NULL WHERE status = ?"
                " AND json_extract(decision, '$.global_position') > ?",
                [PENDING, DecisionStatus.ACCEPTED.value, head],
            )
            return cursor.rowcount

    @staticmethod
    def _entry(row: tuple) -> OutboxEntry:
        sequence, event, status, decision, rejection = row
        return OutboxEntry(
            sequence=sequence,
            event=_decode_proposal(event),
            status=status,
            decision=_decode_decision(decision) if decision else None,
            local_rejection=_decode_rejection(rejection) if rejection else None,
        )

    # -- confirmed server state --------------------------------------------

    def confirmed(self, work_order_id: str) -> WorkOrderState | None:
        with self._lock:
            row = self.db.execute(
                "SELECT state FROM confirmed_work_orders WHERE work_order_id = ?", [work_order_id]
            ).fetchone()
        return _decode_state(row[0]) if row else None

    def all_confirmed(self) -> dict[str, WorkOrderState]:
        with self._lock:
            rows = self.db.execute("SELECT state FROM confirmed_work_orders ORDER BY work_order_id").fetchall()
        states = [_decode_state(row[0]) for row in rows]
        return {state.work_order_id: state for state in states}

    def store_page(self, states: list[WorkOrderState], revoked: list[str], cursor: str) -> None:
        """Keep the newest server state of each order, drop revoked orders and advance the cursor, in one transaction."""
        with self.transaction() as db:
            for work_order_id in revoked:
                db.execute("DELETE FROM confirmed_work_orders WHERE work_order_id = ?", [work_order_id])
            for state in states:
                db.execute(
                    "INSERT INTO confirmed_work_orders (work_order_id, version, state) VALUES (?, ?, ?)"
                    " ON CONFLICT (work_order_id) DO UPDATE SET version = excluded.version, state = excluded.state"
                    " WHERE excluded.version >= confirmed_work_orders.version",
                    [state.work_order_id, state.version, msgspec.json.encode(state).decode()],
                )
            self._set_meta(db, "cursor", cursor)

    # -- metadata ----------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM sync_meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            self._set_meta(db, key, value)

    @staticmethod
    def _set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO sync_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
