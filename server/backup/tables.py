"""The tables a backup contains, their columns and how each column's value is written in the file.

Only the records that cannot be derived are backed up: the event log, the
decisions, the catalog events, the audit of denied requests, the
projectors' checkpoints and the index of attachment blobs. Every other table is a projection, which the
restore rebuilds from these.

In the file every value is plain JSON, whichever store wrote it. Integers
and text stay as they are, and UUIDs are in their canonical text form.
Timestamps are ISO 8601 in UTC with microseconds, JSON documents are their
text, byte strings are base64, and booleans are true or false. Each store
converts to and from its own column types.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Callable
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


def _columns(*specs: str) -> tuple[Column, ...]:
    """Build columns from "name:kind" strings, such as "event_id:uuid"."""
    columns = []
    for spec in specs:
        name, _, kind = spec.partition(":")
        columns.append(Column(name, Kind(kind)))
    return tuple(columns)


# In restore order: decisions refer to events by global_position.
TABLES = (
    Table(
        "events",
        _columns(
            "global_position:integer", "event_id:uuid", "work_order_id:text", "stream_version:integer", "type:text",
            "client_event_id:uuid", "actor:text", "actor_role:text", "device_id:text", "occurred_at:timestamp",
            "effective_time:timestamp", "recorded_at:timestamp", "event:json",
        ),
        "global_position",
    ),
    Table(
        "decisions",
        _columns(
            "decision_id:integer", "subject:text", "client_event_id:uuid", "fingerprint:bytes", "work_order_id:text",
            "type:text", "status:text", "reason_code:text", "actor_role:text", "device_id:text",
            "correlation_id:text", "global_position:integer", "decided_at:timestamp", "proposal:json", "decision:json",
        ),
        "decision_id",
    ),
    Table(
        "catalog_events",
        _columns(
            "id:integer", "recorded_at:timestamp", "actor:text", "actor_role:text", "device_id:text",
            "correlation_id:text", "entity:text", "entity_id:text", "type:text", "payload:json",
        ),
        "id",
    ),
    Table(
        "denied_requests",
        _columns(
            "denial_id:integer", "denied_at:timestamp", "subject:text", "subject_verified:boolean", "role:text",
            "device_id:text", "correlation_id:text", "method:text", "path:text", "status_code:integer",
            "reason:text", "message:text",
        ),
        "denial_id",
    ),
    Table("projector_checkpoints", _columns("name:text", "position:integer", "updated_at:instant"), "name"),
    # The attachment index: blobs before their uploaders, which refer to them. The bytes stay in the blob store.
    Table(
        "blobs",
        _columns(
            "sha256:text", "size_bytes:integer", "content_type:text", "status:text", "created_by:text",
            "created_at:timestamp", "stored_at:timestamp",
        ),
        "sha256",
    ),
    Table("blob_uploaders", _columns("sha256:text", "subject:text", "uploaded_at:timestamp"), "sha256"),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}

# The tables in the files of each backup format version. Version 1 files have no attachment index.
FORMAT_TABLES = {1: TABLES[:5], 2: TABLES}


# -- to the file -------------------------------------------------------------


def portable_value(kind: Kind, value: Any) -> Any:
    """Turn a value read from either store into its JSON form in the file."""
    if value is None:
        return None
    if kind is Kind.UUID:
        # PostgreSQL returns UUID objects; SQLite returns the canonical text that the store wrote.
        return value if isinstance(value, str) else str(value)
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


Converter = Callable[[Any], Any]


def _integer(value: Any) -> int:
    # bool is a subclass of int, so an integer column must reject it by name.
    if type(value) is not int:
        raise InvalidValue(f"expected integer, found {type(value).__name__} {value!r:.60}")
    return value


def _text(value: Any) -> str:
    if type(value) is not str:
        raise InvalidValue(f"expected text, found {type(value).__name__} {value!r:.60}")
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise InvalidValue(f"expected boolean, found {type(value).__name__} {value!r:.60}")
    return value


def _bytes(value: Any) -> bytes:
    return base64.b64decode(_text(value), validate=True)


# Per column kind: the function that turns a non-null file value into what each store writes.
SQLITE_CONVERTERS: dict[Kind, Converter] = {
    Kind.INTEGER: _integer,
    Kind.TEXT: _text,
    Kind.UUID: lambda value: str(uuid.UUID(_text(value))),
    Kind.TIMESTAMP: lambda value: _instant(_text(value)).isoformat(),
    Kind.INSTANT: lambda value: format_instant(_instant(_text(value))),
    Kind.JSON: lambda value: _text(value).encode(),
    Kind.BYTES: _bytes,
    Kind.BOOLEAN: lambda value: int(_boolean(value)),
}
POSTGRES_CONVERTERS: dict[Kind, Converter] = {
    Kind.INTEGER: _integer,
    Kind.TEXT: _text,
    Kind.UUID: lambda value: uuid.UUID(_text(value)),
    Kind.TIMESTAMP: lambda value: _instant(_text(value)),
    Kind.INSTANT: lambda value: _instant(_text(value)),
    Kind.JSON: _text,
    Kind.BYTES: _bytes,
    Kind.BOOLEAN: _boolean,
}


def row_converter(table: Table, converters: dict[Kind, Converter]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """Return a function that turns one file row of `table` into a row for a store; None stays None.

    It raises InvalidValue, ValueError or binascii.Error for a value that does not fit its column.
    """
    functions = [converters[column.kind] for column in table.columns]

    def convert(row: list[Any]) -> tuple[Any, ...]:
        return tuple(None if value is None else function(value) for function, value in zip(functions, row))

    return convert
