"""The tables a backup contains, their columns and how each column's value is written in the file.

Only the records that cannot be derived are backed up: the event log, the
decisions, the catalog events, the audit of denied requests and the
projectors' checkpoints. Every other table is a projection, which the
restore rebuilds from these.

In the file every value is plain JSON, whichever store wrote it: integers
and text as they are, UUIDs in their canonical text form, timestamps as ISO
8601 in UTC with microseconds, JSON documents as their text, byte strings
in base64 and booleans as true or false. Each store converts to and from
its own column types.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import uuid
from typing import Any

from ..kpi_projection.rows import format_instant

UTC = dt.timezone.utc


class Kind(enum.Enum):
    INTEGER = "integer"
    TEXT = "text"
    UUID = "uuid"
    TIMESTAMP = "timestamp"
    """An instant that SQLite keeps as `datetime.isoformat()` text."""
    INSTANT = "instant"
    """An instant that SQLite keeps as fixed-width `...Z` text (`format_instant`)."""
    JSON = "json"
    BYTES = "bytes"
    BOOLEAN = "boolean"


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    order_by: str
    """The column that orders the rows; a restore inserts them in this order."""

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def _columns(*pairs: tuple[str, Kind]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in pairs)


I, T, U, TS, J, B = Kind.INTEGER, Kind.TEXT, Kind.UUID, Kind.TIMESTAMP, Kind.JSON, Kind.BYTES

# In restore order: decisions refer to events by global_position.
TABLES = (
    Table(
        "events",
        _columns(
            ("global_position", I), ("event_id", U), ("work_order_id", T), ("stream_version", I), ("type", T),
            ("client_event_id", U), ("actor", T), ("actor_role", T), ("device_id", T), ("occurred_at", TS),
            ("effective_time", TS), ("recorded_at", TS), ("event", J),
        ),
        "global_position",
    ),
    Table(
        "decisions",
        _columns(
            ("decision_id", I), ("subject", T), ("client_event_id", U), ("fingerprint", B), ("work_order_id", T),
            ("type", T), ("status", T), ("reason_code", T), ("actor_role", T), ("device_id", T),
            ("correlation_id", T), ("global_position", I), ("decided_at", TS), ("proposal", J), ("decision", J),
        ),
        "decision_id",
    ),
    Table(
        "catalog_events",
        _columns(
            ("id", I), ("recorded_at", TS), ("actor", T), ("actor_role", T), ("device_id", T),
            ("correlation_id", T), ("entity", T), ("entity_id", T), ("type", T), ("payload", J),
        ),
        "id",
    ),
    Table(
        "denied_requests",
        _columns(
            ("denial_id", I), ("denied_at", TS), ("subject", T), ("subject_verified", Kind.BOOLEAN), ("role", T),
            ("device_id", T), ("correlation_id", T), ("method", T), ("path", T), ("status_code", I),
            ("reason", T), ("message", T),
        ),
        "denial_id",
    ),
    Table("projector_checkpoints", _columns(("name", T), ("position", I), ("updated_at", Kind.INSTANT)), "name"),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}


# -- to the file -------------------------------------------------------------


def portable_value(kind: Kind, value: Any) -> Any:
    """Turn a value read from either store into its JSON form in the file."""
    if value is None:
        return None
    if kind is Kind.UUID:
        return str(uuid.UUID(str(value)))
    if kind in (Kind.TIMESTAMP, Kind.INSTANT):
        return _instant(value).isoformat(timespec="microseconds")
    if kind is Kind.JSON:
        return value.decode() if isinstance(value, (bytes, memoryview)) else str(value)
    if kind is Kind.BYTES:
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind is Kind.BOOLEAN:
        return bool(value)
    return value


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text).astimezone(UTC)


# -- from the file -----------------------------------------------------------


class InvalidValue(ValueError):
    """A value in the file that does not fit its column."""


def sqlite_value(kind: Kind, value: Any) -> Any:
    """Turn a file value into what the SQLite store writes in that column."""
    if value is None:
        return None
    _check_type(kind, value)
    if kind is Kind.TIMESTAMP:
        return _instant(value).isoformat()
    if kind is Kind.INSTANT:
        return format_instant(_instant(value))
    if kind is Kind.JSON:
        return value.encode()
    if kind is Kind.BYTES:
        return base64.b64decode(value, validate=True)
    if kind is Kind.BOOLEAN:
        return int(value)
    if kind is Kind.UUID:
        return str(uuid.UUID(value))
    return value


def postgres_value(kind: Kind, value: Any) -> Any:
    """Turn a file value into what asyncpg writes in that PostgreSQL column."""
    if value is None:
        return None
    _check_type(kind, value)
    if kind in (Kind.TIMESTAMP, Kind.INSTANT):
        return _instant(value)
    if kind is Kind.BYTES:
        return base64.b64decode(value, validate=True)
    if kind is Kind.UUID:
        return uuid.UUID(value)
    return value


_JSON_TYPES = {
    Kind.INTEGER: int,
    Kind.TEXT: str,
    Kind.UUID: str,
    Kind.TIMESTAMP: str,
    Kind.INSTANT: str,
    Kind.JSON: str,
    Kind.BYTES: str,
    Kind.BOOLEAN: bool,
}


def _check_type(kind: Kind, value: Any) -> None:
    expected = _JSON_TYPES[kind]
    # bool is a subclass of int, so an integer column must reject it by name.
    if not isinstance(value, expected) or (kind is Kind.INTEGER and isinstance(value, bool)):
        raise InvalidValue(f"expected {kind.value}, found {type(value).__name__} {value!r:.60}")
