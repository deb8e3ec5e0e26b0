"""The device's local SQLite file: outbox of proposed events, confirmed states, sync cursor.

Every write is one transaction committed before the call returns, with
`synchronous=FULL`, so an event the app has recorded survives the process
being killed at any point.
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

PENDING = "PENDING"

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode
_decode_state = msgspec.json.Decoder(WorkOrderState).decode
_decode_decision = msgspec.json.Decoder(EventDecision).decode


class OutboxEntry(msgspec.Struct, kw_only=True):
    """One event recorded on this device, with the server's decision once it is known."""

    sequence: int
    event: ProposedEvent
    status: str
    decision: EventDecision | None = None

    @property
    def pending(self) -> bool:
        return self.status == PENDING


class LocalStore:
    """Thread-safe access to the device's SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.db = sqlite_utils.Database(connection)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self._lock = threading.RLock()
        self._create_tables()

    def _create_tables(self) -> None:
        with self.transaction():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS outbox ("
                " sequence INTEGER PRIMARY KEY AUTOINCREMENT,"
                " client_event_id TEXT NOT NULL UNIQUE,"
                " work_order_id TEXT NOT NULL,"
                " status TEXT NOT NULL,"
                " event TEXT NOT NULL,"
                " decision TEXT,"
                " recorded_at TEXT NOT NULL)"
            )
            self.db.execute("CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, sequence)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS confirmed_work_orders ("
                " work_order_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with self._lock, self.db.atomic():
            yield self.db

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
        sql = "SELECT sequence, event, status, decision FROM outbox WHERE status = ? ORDER BY sequence"
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
            "SELECT o.sequence, o.event, o.status, o.decision FROM outbox o"
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
            rows = self.db.execute("SELECT sequence, event, status, decision FROM outbox ORDER BY sequence").fetchall()
        return [self._entry(row) for row in rows]

    def entry(self, client_event_id: uuid.UUID) -> OutboxEntry | None:
        with self._lock:
            row = self.db.execute(
                "SELECT sequence, event, status, decision FROM outbox WHERE client_event_id = ?", [str(client_event_id)]
            ).fetchone()
        return self._entry(row) if row else None

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
                        "SELECT sequence, event, status, decision FROM outbox WHERE client_event_id = ?",
                        [str(decision.client_event_id)],
                    ).fetchone()
                    changed.append(self._entry(row))
        return changed

    @staticmethod
    def _entry(row: tuple) -> OutboxEntry:
        sequence, event, status, decision = row
        return OutboxEntry(
            sequence=sequence,
            event=_decode_proposal(event),
            status=status,
            decision=_decode_decision(decision) if decision else None,
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
