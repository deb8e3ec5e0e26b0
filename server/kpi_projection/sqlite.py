"""KPI history and projector checkpoint on the embedded SQLite store.

Every call goes through the store's single connection and lock. A batch is
one `BEGIN IMMEDIATE` transaction, so the history rows and the checkpoint
commit together, and other server processes on the same file wait for it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from ..upcasting import decode_recorded_event
from ..store.sqlite import SQLiteStore
from .rows import PROJECTOR_NAME, HistoryRow, HistoryWindow, ProjectorLag, format_instant, history_rows, parse_instant

_decode_event = decode_recorded_event

HISTORY_COLUMNS = (
    "work_order_id, global_position, stream_version, type, effective_time, engineer_id, asset_id, contract_id, fixed,"
    " priority, hold_reason, maintenance_type, component"
)

# Orders created before the window end with an event at or after its start,
# and the orders created in (start, repeat_end] that can make a repeat visit.
_WINDOW_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM kpi_order_history WHERE work_order_id IN ("
    " SELECT work_order_id FROM kpi_order_history WHERE type = 'created' AND effective_time < :end"
    " INTERSECT SELECT work_order_id FROM kpi_order_history WHERE effective_time >= :start"
    " UNION SELECT work_order_id FROM kpi_order_history"
    " WHERE type = 'created' AND effective_time > :start AND effective_time <= :repeat_end"
    ") ORDER BY global_position"
)

def sqlite_row(row: HistoryRow) -> tuple[object, ...]:
    fixed = None if row.fixed is None else int(row.fixed)
    return (
        row.work_order_id,
        row.global_position,
        row.stream_version,
        row.type,
        format_instant(row.effective_time),
        row.engineer_id,
        row.asset_id,
        row.contract_id,
        fixed,
        row.priority,
        row.hold_reason,
        row.maintenance_type,
        row.component,
    )

def history_row_of(values: tuple[object, ...]) -> HistoryRow:
    order, position, version, kind, time, engineer, asset, contract, fixed, priority, hold_reason, maintenance, component = (
        values
    )
    return HistoryRow(
        work_order_id=str(order),
        global_position=int(position),  # type: ignore[arg-type]
        stream_version=int(version),  # type: ignore[arg-type]
        type=str(kind),
        effective_time=parse_instant(str(time)),
        engineer_id=engineer,  # type: ignore[arg-type]
        asset_id=asset,  # type: ignore[arg-type]
        contract_id=contract,  # type: ignore[arg-type]
        fixed=None if fixed is None else bool(fixed),
        priority=priority,  # type: ignore[arg-type]
        hold_reason=hold_reason,  # type: ignore[arg-type]
        maintenance_type=maintenance,  # type: ignore[arg-type]
        component=component,  # type: ignore[arg-type]
    )

def insert_history_sql(table: str) -> str:
    return f"INSERT INTO {table} ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

def write_checkpoint(db: sqlite3.Connection, position: int) -> None:
    db.execute(
        "INSERT INTO projector_checkpoints (name, position, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        (PROJECTOR_NAME, position, format_instant(dt.datetime.now(dt.timezone.utc))),
    )

def read_checkpoint(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT position FROM projector_checkpoints WHERE name = ?", (PROJECTOR_NAME,)).fetchone()
    return int(row[0]) if row else 0

class SQLiteKpiHistory:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def apply_batch(self, limit: int) -> tuple[int, int]:
        """Apply up to `limit` events after the checkpoint; return (events read, new checkpoint)."""

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            db.execute("BEGIN IMMEDIATE")
            checkpoint = read_checkpoint(db)
            raw = db.execute(
                "SELECT event FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?",
                (checkpoint, limit),
            ).fetchall()
            if not raw:
                db.execute("COMMIT")
                return 0, checkpoint
            events = [_decode_event(row[0]) for row in raw]
            # A plain INSERT: applying an event twice violates the primary key instead of counting it twice.
            db.executemany(insert_history_sql("kpi_order_history"), [sqlite_row(row) for row in history_rows(events)])
            position = events[-1].global_position
            write_checkpoint(db, position)
            db.execute("COMMIT")
            return len(events), position

        return await self._store._run(work)

    async def lag(self) -> ProjectorLag:
        def read(db: sqlite3.Connection) -> ProjectorLag:
            head = db.execute("SELECT coalesce(max(global_position), 0) FROM events").fetchone()[0]
            checkpoint = read_checkpoint(db)
            recorded = db.execute("SELECT recorded_at FROM events WHERE global_position = ?", (checkpoint,)).fetchone()
            return ProjectorLag(
                head_position=head,
                checkpoint_position=checkpoint,
                checkpoint_recorded_at=dt.datetime.fromisoformat(recorded[0]) if recorded else None,
            )

        return await self._store._run(read)

    async def window_rows(self, window: HistoryWindow) -> list[HistoryRow]:
        """Return the history rows of every order the window needs, in global order, in one query."""
        params = {
            "start": format_instant(window.start),
            "end": format_instant(window.end),
            "repeat_end": format_instant(window.repeat_end),
        }

        def read(db: sqlite3.Connection) -> list[HistoryRow]:
            return [history_row_of(values) for values in db.execute(_WINDOW_SQL, params).fetchall()]

        return await self._store._run(read)
