"""The backup file: gzip-compressed JSON lines with a header, one line per row, and a closing manifest.

    {"format": "csdp-backup", "format_version": 2, "schema_version": 7, "source": "sqlite", ...}
    ["events", [1, "6f0c...", "wo-1", ...]]
    ...
    {"end": true, "counts": {"events": 120, ...}, "sha256": "..."}

The header lists each table's columns. The closing line contains the row
count of each table and the SHA-256 of every line before it (the bytes as
written, before compression), so a truncated or edited file is detected
before anything is restored. Rows are written and read one at a time, so
neither side keeps the whole log in memory.

Format version 2 added the attachment index (`blobs`, `blob_uploaders`).
A version 1 file still restores, with an empty attachment index.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import gzip
import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
from shared_schema import EventDecision, ProposedEvent

from ..upcasting import decode_recorded_event, upcast_proposal
from .tables import FORMAT_TABLES, SQLITE_CONVERTERS, TABLES, TABLES_BY_NAME, InvalidValue, Kind, Table, row_converter

_encode = msgspec.json.encode
_decode = msgspec.json.decode

FORMAT = "csdp-backup"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = tuple(sorted(FORMAT_TABLES))

_decode_decision = msgspec.json.Decoder(EventDecision).decode
_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode

# The JSON documents that the projection rebuild decodes, with the decoder it uses.
# Any other JSON column only has to be valid JSON.
_DOCUMENT_DECODERS: dict[tuple[str, str], Any] = {
    ("events", "event"): decode_recorded_event,
    ("decisions", "decision"): _decode_decision,
    ("decisions", "proposal"): lambda raw: upcast_proposal(_decode_proposal(raw)),
}


class BackupError(Exception):
    """A backup file that cannot be read or restored; the message names the file and the cause."""


class BackupWriter:
    """Writes one backup file; `finish` writes the manifest line and closes it."""

    def __init__(self, path: Path, *, source: str, schema_version: int) -> None:
        self.path = path
        # Level 6, the gzip command's default: Python's default of 9 costs about twice the time for a few percent.
        self._file: IO[bytes] = gzip.open(path, "wb", compresslevel=6)
        self._digest = hashlib.sha256()
        self.counts = {table.name: 0 for table in TABLES}
        self._line(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "schema_version": schema_version,
                "source": source,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "tables": {table.name: table.column_names for table in TABLES},
            }
        )

    def _line(self, value: Any) -> None:
        self._write(_encode(value) + b"\n")

    def _write(self, data: bytes) -> None:
        self._digest.update(data)
        self._file.write(data)

    def write_rows(self, table: Table, rows: list[list[Any]]) -> None:
        # One write per page: the digest of the joined lines equals the digest of the lines one by one.
        self._write(b"".join(_encode([table.name, row]) + b"\n" for row in rows))
        self.counts[table.name] += len(rows)

    def finish(self) -> None:
        closing = {"end": True, "counts": self.counts, "sha256": self._digest.hexdigest()}
        self._file.write(_encode(closing) + b"\n")
        self._file.close()

    def abort(self) -> None:
        """Close and delete a file that was not finished, so no partial backup is left behind."""
        self._file.close()
        self.path.unlink(missing_ok=True)


class BackupReader:
    """Reads a backup file; `verify` checks it whole, `rows` then yields its rows table by table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def verify(self) -> dict[str, int]:
        """Read the whole file once and check its header, every value of every row, the counts and the checksum.

        Each value is converted the way a restore converts it, and each event,
        decision and proposal document is decoded the way the projection
        rebuild decodes it, so a bad row stops the restore before anything is
        written. Return the row count of each table in the file.
        """
        digest = hashlib.sha256()
        counts: dict[str, int] = {}
        closing: dict[str, Any] | None = None
        for number, data, value in self._lines():
            if closing is not None:
                raise self._corrupt(f"line {number} follows the closing manifest")
            if number == 1:
                self.header = self._check_header(value)
                counts = {table.name: 0 for table in FORMAT_TABLES[self.header["format_version"]]}
            elif isinstance(value, dict) and value.get("end") is True:
                closing = value
                continue
            else:
                table = self._row_table(number, value)
                self._check_row(number, table, value[1])
                counts[table.name] += 1
            digest.update(data)
        if not self.header:
            raise self._corrupt("it contains no lines")
        if closing is None:
            raise self._corrupt("the closing manifest is missing, so the file is truncated")
        if closing.get("sha256") != digest.hexdigest():
            raise self._corrupt("the SHA-256 of its lines does not match the manifest, so the file was changed")
        if closing.get("counts") != counts:
            raise self._corrupt(f"the row counts {counts} do not match the manifest's {closing.get('counts')}")
        self.counts = counts
        return counts

    def rows(self) -> Iterator[tuple[Table, list[Any]]]:
        """Yield (table, row) in file order; call `verify` first."""
        for number, _, value in self._lines():
            if number == 1 or (isinstance(value, dict) and value.get("end") is True):
                continue
            table = self._row_table(number, value)
            yield table, value[1]

    def _lines(self) -> Iterator[tuple[int, bytes, Any]]:
        try:
            with gzip.open(self.path, "rb") as file:
                for number, data in enumerate(file, start=1):
                    try:
                        value = _decode(data)
                    except msgspec.DecodeError as exc:
                        raise self._corrupt(f"line {number} is not valid JSON ({exc})") from None
                    yield number, data, value
        except FileNotFoundError:
            raise BackupError(f"backup file {self.path} not found") from None
        except IsADirectoryError:
            raise BackupError(f"{self.path} is a folder, not a backup file") from None
        except PermissionError as exc:
            raise BackupError(f"backup file {self.path} cannot be read: {exc.strerror}") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise self._corrupt(f"it is not a complete gzip file ({exc})") from None

    def _check_header(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise BackupError(f"{self.path} is not a csdp backup: its first line has no \"format\": \"{FORMAT}\"")
        version = value.get("format_version")
        if type(version) is not int or version not in FORMAT_TABLES:
            readable = " and ".join(str(number) for number in READABLE_FORMAT_VERSIONS)
            raise BackupError(
                f"{self.path} has backup format version {version!r}; this csdp reads versions {readable}. "
                "Restore it with the csdp release that wrote it"
            )
        if not isinstance(value.get("schema_version"), int):
            raise self._corrupt("the header has no integer schema_version")
        expected = {table.name: table.column_names for table in FORMAT_TABLES[version]}
        if value.get("tables") != expected:
            raise BackupError(
                f"{self.path} lists tables or columns {value.get('tables')} that differ from this server's {expected}; "
                "restore it with the csdp release that wrote it"
            )
        return value

    def _row_table(self, number: int, value: Any) -> Table:
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], list)):
            raise self._corrupt(f"line {number} is not a [table, row] pair")
        table = TABLES_BY_NAME.get(value[0]) if isinstance(value[0], str) else None
        if table is None or table not in FORMAT_TABLES[self.header["format_version"]]:
            raise self._corrupt(f"line {number} names the unknown table {value[0]!r}")
        if len(value[1]) != len(table.columns):
            raise self._corrupt(f"line {number} has {len(value[1])} values; table {table.name} has {len(table.columns)} columns")
        return table

    def _check_row(self, number: int, table: Table, row: list[Any]) -> None:
        """Raise BackupError naming the line and the column of the first value that a restore could not load."""
        try:
            _converter(table)(row)
        except (InvalidValue, ValueError, binascii.Error) as exc:
            raise self._corrupt(f"line {number} ({table.name}) has an invalid value: {exc}") from None
        for column, raw in zip(table.columns, row):
            if column.kind is not Kind.JSON or raw is None:
                continue
            decode = _DOCUMENT_DECODERS.get((table.name, column.name), _decode)
            try:
                decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise self._corrupt(
                    f"line {number} ({table.name}) has an invalid {column.name} document: {exc}"
                ) from None

    def _corrupt(self, cause: str) -> BackupError:
        return BackupError(f"backup file {self.path} is corrupt: {cause}")


@functools.cache
def _converter(table: Table) -> Any:
    return row_converter(table, SQLITE_CONVERTERS)
