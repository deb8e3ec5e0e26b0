"""`csdp backup`, `csdp restore` and `csdp config show` as a user runs them, with bad input."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import new_postgres_database
from test_cli import run_csdp

from server.backup.archive import FORMAT_VERSION


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


@pytest.fixture
def backup_file(tmp_path: Path) -> Path:
    """A backup of a store with the demo data, made with the real command."""
    source = tmp_path / "source"
    seed = run_csdp(source, "migrate")
    assert seed.returncode == 0, seed.stderr
    _load_demo(source)
    path = tmp_path / "site.jsonl.gz"
    result = run_csdp(source, "backup", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {path}: ")
    return path


def _load_demo(var_dir: Path) -> None:

    from server.config import Settings
    from server.demo import load_demo
    from server.store import create_store

    async def run() -> None:
        store = create_store(Settings(var_dir=var_dir))
        await store.open()
        await load_demo(store)
        await store.close()

    asyncio.run(run())


def read_lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes], *, reseal: bool = False) -> None:
    """Write `lines` back; with `reseal`, recompute the manifest so only the content is wrong."""
    if reseal:
        body = lines[:-1]
        closing = json.loads(lines[-1])
        closing["sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
        lines = [*body, json.dumps(closing).encode() + b"\n"]
    with gzip.open(path, "wb") as file:
        file.write(b"".join(lines))


def event_count(var_dir: Path) -> int:
    with sqlite3.connect(var_dir / "csdp.sqlite3") as connection:
        return connection.execute("SELECT count(*) FROM events").fetchone()[0]


def test_restore_into_new_sqlite_file(tmp_path, backup_file):
    target = tmp_path / "target"

    result = run_csdp(target, "restore", str(backup_file))

    assert result.returncode == 0, result.stderr
    assert "restored " in result.stdout
    assert "rebuilt work_orders_current" in result.stdout
    assert event_count(target) == event_count(tmp_path / "source")
    assert "restore" in result.stderr  # the progress bar goes to stderr


def test_restore_missing_file(tmp_path):
    result = run_csdp(tmp_path / "target", "restore", str(tmp_path / "absent.jsonl.gz"))

    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_restore_rejects_non_empty_store(tmp_path, backup_file):
    result = run_csdp(tmp_path / "source", "restore", str(backup_file))

    assert result.returncode == 1
    assert "is not empty (it holds " in result.stderr
    assert "restore into a new, empty database" in result.stderr
    assert "rows" not in result.stderr  # no progress bar is drawn before the check


def test_restore_rejects_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not the records you are looking for\n")

    result = run_csdp(tmp_path / "target", "restore", str(path))

    assert result.returncode == 1
    assert f"backup file {path} is corrupt: it is not a complete gzip file" in result.stderr
    assert not (tmp_path / "target" / "csdp.sqlite3").exists()


def test_restore_rejects_other_json(tmp_path):
    path = tmp_path / "other.jsonl.gz"
    write_lines(path, [b'{"hello": "world"}\n'])

    result = run_csdp(tmp_path / "target", "restore", str(path))

    assert result.returncode == 1
    assert "is not a csdp backup" in result.stderr


def test_restore_rejects_truncated_file(tmp_path, backup_file):
    lines = read_lines(backup_file)
    write_lines(backup_file, lines[:-2])

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "the closing manifest is missing, so the file is truncated" in result.stderr
    assert not (tmp_path / "target" / "csdp.sqlite3").exists()


def test_restore_rejects_cut_gzip_stream(tmp_path, backup_file):
    data = backup_file.read_bytes()
    backup_file.write_bytes(data[: len(data) // 2])

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "it is not a complete gzip file" in result.stderr


def test_restore_rejects_edited_row(tmp_path, backup_file):
    lines = read_lines(backup_file)
    lines[1] = lines[1].replace(b"wo-1001", b"wo-9999")
    write_lines(backup_file, lines)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "does not match the manifest, so the file was changed" in result.stderr


def test_restore_rejects_newer_format(tmp_path, backup_file):
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    header["format_version"] = FORMAT_VERSION + 1
    lines[0] = json.dumps(header).encode() + b"\n"
    write_lines(backup_file, lines, reseal=True)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert f"has backup format version {FORMAT_VERSION + 1}; this csdp reads versions 1 and {FORMAT_VERSION}" in result.stderr


def test_restore_rejects_newer_schema(tmp_path, backup_file):
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    header["schema_version"] = 999
    lines[0] = json.dumps(header).encode() + b"\n"
    write_lines(backup_file, lines, reseal=True)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "was written at schema version 999, newer than this csdp's" in result.stderr


def test_restore_rejects_invalid_value_and_leaves_store_empty(tmp_path, backup_file):
    lines = read_lines(backup_file)
    index = next(i for i, line in enumerate(lines) if line.startswith(b'["events"'))
    kind, row = json.loads(lines[index])
    row[1] = "not-a-uuid"
    lines[index] = json.dumps([kind, row]).encode() + b"\n"
    write_lines(backup_file, lines, reseal=True)
    target = tmp_path / "target"

    result = run_csdp(target, "restore", str(backup_file))

    assert result.returncode == 1
    assert f"line {index + 1} (events) has an invalid value: " in result.stderr
    assert not (target / "csdp.sqlite3").exists()


def edit_column(backup_file: Path, table: str, column: str, value: object) -> int:
    """Set `column` of the first `table` row to `value`, reseal the file and return the row's line number."""
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    index = next(i for i, line in enumerate(lines) if line.startswith(f'["{table}"'.encode()))
    name, row = json.loads(lines[index])
    row[header["tables"][table].index(column)] = value
    lines[index] = json.dumps([name, row]).encode() + b"\n"
    write_lines(backup_file, lines, reseal=True)
    return index + 1


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("events", "event", "{not json", "(events) has an invalid event document: "),
        ("events", "event", '{"event_id": 1}', "(events) has an invalid event document: "),
        ("decisions", "decision", "[]", "(decisions) has an invalid decision document: "),
        ("decisions", "proposal", '{"type": "no_such_type"}', "(decisions) has an invalid proposal document: "),
        ("catalog_events", "payload", "{", "(catalog_events) has an invalid payload document: "),
        ("events", "occurred_at", "yesterday", "(events) has an invalid value: "),
    ],
    ids=["event-not-json", "event-wrong-shape", "decision", "proposal", "catalog-payload", "timestamp"],
)
def test_restore_checks_every_document_first(tmp_path, backup_file, table, column, value, message):
    number = edit_column(backup_file, table, column, value)
    target = tmp_path / "target"

    result = run_csdp(target, "restore", str(backup_file))

    assert result.returncode == 1
    assert f"is corrupt: line {number} {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "csdp.sqlite3").exists()


def test_restore_explains_failed_rebuild(tmp_path, backup_file):
    """A document that decodes but does not replay (a wrong stream version) fails in the rebuild, after loading."""
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    index = next(i for i, line in enumerate(lines) if line.startswith(b'["events"'))
    name, row = json.loads(lines[index])
    column = header["tables"]["events"].index("event")
    document = json.loads(row[column])
    document["stream_version"] = 99
    row[column] = json.dumps(document)
    lines[index] = json.dumps([name, row]).encode() + b"\n"
    write_lines(backup_file, lines, reseal=True)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "but rebuilding the projections failed: " in result.stderr
    assert "do not start a server on it" in result.stderr
    assert "csdp projections rebuild" in result.stderr
    assert "Traceback" not in result.stderr


def test_restore_reads_format_version_1(tmp_path, backup_file):
    """A file written before the attachment index was backed up restores with an empty index."""
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    closing = json.loads(lines[-1])
    header["format_version"] = 1
    for table in ("blobs", "blob_uploaders"):
        del header["tables"][table]
        del closing["counts"][table]
    body = [json.dumps(header).encode() + b"\n"]
    body += [line for line in lines[1:-1] if not line.startswith((b'["blobs"', b'["blob_uploaders"'))]
    closing["sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    write_lines(backup_file, [*body, json.dumps(closing).encode() + b"\n"])
    target = tmp_path / "target"

    result = run_csdp(target, "restore", str(backup_file))

    assert result.returncode == 0, result.stderr
    assert event_count(target) == event_count(tmp_path / "source")


def test_restore_of_version_1_rejects_blob_rows(tmp_path, backup_file):
    lines = read_lines(backup_file)
    header = json.loads(lines[0])
    header["format_version"] = 1
    for table in ("blobs", "blob_uploaders"):
        del header["tables"][table]
    lines[0] = json.dumps(header).encode() + b"\n"
    lines.insert(1, b'["blobs", ["ab", 1, "image/jpeg", "stored", "e-1", "2026-01-01T00:00:00+00:00", null]]\n')
    write_lines(backup_file, lines, reseal=True)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "line 2 names the unknown table 'blobs'" in result.stderr


def test_restore_rejects_unknown_table(tmp_path, backup_file):
    lines = read_lines(backup_file)
    lines.insert(1, b'["passwords", ["hunter2"]]\n')
    write_lines(backup_file, lines, reseal=True)

    result = run_csdp(tmp_path / "target", "restore", str(backup_file))

    assert result.returncode == 1
    assert "line 2 names the unknown table 'passwords'" in result.stderr


def test_backup_refuses_to_overwrite(tmp_path, backup_file):
    before = backup_file.read_bytes()

    result = run_csdp(tmp_path / "source", "backup", str(backup_file))

    assert result.returncode == 1
    assert "already exists; give a new file name" in result.stderr
    assert backup_file.read_bytes() == before


def test_backup_of_missing_store(tmp_path):
    result = run_csdp(tmp_path / "nowhere", "backup", str(tmp_path / "b.jsonl.gz"))

    assert result.returncode == 1
    assert "no SQLite database at" in result.stderr
    assert not (tmp_path / "b.jsonl.gz").exists()


def test_backup_into_missing_folder(tmp_path, backup_file):
    result = run_csdp(tmp_path / "source", "backup", str(tmp_path / "absent" / "b.jsonl.gz"))

    assert result.returncode == 1
    assert "does not exist; create it or give another path" in result.stderr


def test_backup_batch_size_checked(tmp_path):
    result = run_csdp(tmp_path / "source", "backup", str(tmp_path / "b.jsonl.gz"), "--batch-size", "0")

    assert result.returncode == 2
    assert "--batch-size" in result.stderr


def test_config_show_hides_secrets(tmp_path):
    token = "t0k3n" * 8

    result = run_csdp(
        tmp_path / "var",
        "config",
        "show",
        "--database-url",
        "postgresql://csdp:s3cret@127.0.0.1:5432/csdp?password=other&sslmode=require",
        CSDP_METRICS_TOKEN=token,
        CSDP_RATE_LIMIT_BURST="50",
        CSDP_BLOB_BACKEND="s3",
        CSDP_BLOB_S3_BUCKET="photos",
        CSDP_BLOB_S3_ACCESS_KEY_ID="blob-reader",
        CSDP_BLOB_S3_SECRET_ACCESS_KEY="blob-secret-value",
    )

    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    assert "other" not in result.stdout
    assert token not in result.stdout
    assert "blob-secret-value" not in result.stdout
    lines = {line.split("=", 1)[0]: line for line in result.stdout.splitlines() if "=" in line and not line.startswith("#")}
    assert "postgresql://csdp:***@127.0.0.1:5432/csdp?password=***&sslmode=require" in lines["CSDP_DATABASE_URL"]
    assert lines["CSDP_DATABASE_URL"].endswith("# cli")
    assert lines["CSDP_METRICS_TOKEN"].startswith("CSDP_METRICS_TOKEN=***")
    assert lines["CSDP_METRICS_TOKEN"].endswith("# env")
    assert lines["CSDP_BLOB_S3_SECRET_ACCESS_KEY"].startswith("CSDP_BLOB_S3_SECRET_ACCESS_KEY=***")
    assert lines["CSDP_BLOB_S3_ACCESS_KEY_ID"].startswith("CSDP_BLOB_S3_ACCESS_KEY_ID=blob-reader ")
    assert lines["CSDP_RATE_LIMIT_BURST"].startswith("CSDP_RATE_LIMIT_BURST=50 ")
    assert lines["CSDP_MAX_BATCH_EVENTS"].endswith("# default")


def test_config_show_json(tmp_path):
    result = run_csdp(tmp_path / "var", "config", "show", "--json", CSDP_SLA_CLOCK_SECONDS="5")

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["CSDP_SLA_CLOCK_SECONDS"] == {"value": "5.0", "source": "env"}
    assert printed["CSDP_VAR_DIR"]["source"] == "env"
    assert printed["development tokens"] == {"value": "on", "source": "derived"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CSDP_DB_POOL_MAX_SIZE", "0", "CSDP_DB_POOL_MAX_SIZE='0' is invalid"),
        ("CSDP_DB_POOL_MIN_SIZE", "-1", "CSDP_DB_POOL_MIN_SIZE='-1' is invalid"),
        ("CSDP_METRICS_TOKEN", "short", "CSDP_METRICS_TOKEN is invalid: expected at least 32"),
        ("CSDP_OTEL_ENABLED", "perhaps", "CSDP_OTEL_ENABLED='perhaps' is invalid: expected true or false"),
        ("CSDP_MAX_BATCH_EVENTS", "lots", "CSDP_MAX_BATCH_EVENTS='lots' is invalid"),
    ],
)
def test_config_show_rejects_invalid_setting(tmp_path, variable, value, message):
    result = run_csdp(tmp_path / "var", "config", "show", **{variable: value})

    assert result.returncode == 1
    assert message in result.stderr


def test_config_show_rejects_pool_minimum_above_maximum(tmp_path):
    result = run_csdp(tmp_path / "var", "config", "show", CSDP_DB_POOL_MIN_SIZE="20", CSDP_DB_POOL_MAX_SIZE="10")

    assert result.returncode == 1
    assert "CSDP_DB_POOL_MIN_SIZE=20 is larger than CSDP_DB_POOL_MAX_SIZE=10" in result.stderr


def test_every_setting_has_a_variable():
    import dataclasses

    from server.config import Settings
    from server.settings_report import SETTING_VARIABLES

    assert [field.name for field in dataclasses.fields(Settings)] == list(SETTING_VARIABLES)


@pytest.mark.parametrize("converters", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("integer", True),
        ("integer", "7"),
        ("integer", 1.5),
        ("text", 7),
        ("uuid", "not-a-uuid"),
        ("timestamp", "yesterday"),
        ("instant", 0),
        ("json", {"already": "decoded"}),
        ("bytes", "***"),
        ("boolean", 1),
    ],
)
def test_converter_rejects_misfit_value(converters, kind, value):
    import binascii

    from server.backup.tables import POSTGRES_CONVERTERS, SQLITE_CONVERTERS, InvalidValue, Kind

    table = SQLITE_CONVERTERS if converters == "sqlite" else POSTGRES_CONVERTERS

    with pytest.raises((InvalidValue, ValueError, binascii.Error)):
        table[Kind(kind)](value)


def test_portable_values_round_trip():
    import datetime as dt

    from server.backup.tables import POSTGRES_CONVERTERS, SQLITE_CONVERTERS, Kind, portable_value

    instant = dt.datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    identifier = uuid.UUID("6f0c5a8e-2f8d-4b47-9a4c-0c9b0c1d2e3f")

    assert portable_value(Kind.TIMESTAMP, instant) == "2026-03-28T23:30:00.000005+00:00"
    assert portable_value(Kind.TIMESTAMP, "2026-03-28T23:30:00+00:00") == "2026-03-28T23:30:00.000000+00:00"
    assert portable_value(Kind.INSTANT, "2026-03-28T23:30:00.000005Z") == "2026-03-28T23:30:00.000005+00:00"
    assert portable_value(Kind.UUID, identifier) == str(identifier)
    assert portable_value(Kind.BYTES, b"\x00\xff") == "AP8="
    assert portable_value(Kind.JSON, b'{"a": 1}') == '{"a": 1}'
    assert portable_value(Kind.BOOLEAN, 0) is False
    assert SQLITE_CONVERTERS[Kind.INSTANT]("2026-03-28T23:30:00.000005+00:00") == "2026-03-28T23:30:00.000005Z"
    assert SQLITE_CONVERTERS[Kind.TIMESTAMP]("2026-03-28T23:30:00.000005+00:00") == "2026-03-28T23:30:00.000005+00:00"
    assert SQLITE_CONVERTERS[Kind.BOOLEAN](True) == 1
    assert POSTGRES_CONVERTERS[Kind.TIMESTAMP]("2026-03-28T23:30:00.000005+00:00") == instant
    assert POSTGRES_CONVERTERS[Kind.UUID](str(identifier)) == identifier
    assert POSTGRES_CONVERTERS[Kind.BYTES]("AP8=") == b"\x00\xff"


def test_commands_run_as_module(tmp_path):
    """`python -m server.cli` makes server.cli __main__, which must still load the operations commands."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith("CSDP_")}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "config", "show", "--var-dir", str(tmp_path / "var")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"CSDP_VAR_DIR={tmp_path / 'var'} ")


def test_restore_into_missing_postgres_database(tmp_path, backup_file, postgres_database):
    missing = postgres_database.rpartition("/")[0] + "/csdp_no_such_database"

    result = run_csdp(tmp_path / "target", "restore", str(backup_file), "--database-url", missing)

    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at" in result.stderr
    assert "csdp_no_such_database" in result.stderr


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    """A database of its own, because the session's database is migrated by other tests."""
    with new_postgres_database("csdp_test_empty") as url:
        yield url


def test_backup_of_unmigrated_postgres(tmp_path, empty_postgres_database):
    result = run_csdp(tmp_path / "var", "backup", str(tmp_path / "b.jsonl.gz"), "--database-url", empty_postgres_database)

    assert result.returncode == 1
    assert "has schema version 0, this csdp expects" in result.stderr
    assert "run csdp migrate on it before a backup" in result.stderr
    assert not (tmp_path / "b.jsonl.gz").exists()


def test_restore_rejects_empty_gzip(tmp_path):
    path = tmp_path / "empty.jsonl.gz"
    write_lines(path, [])

    result = run_csdp(tmp_path / "target", "restore", str(path))

    assert result.returncode == 1
    assert f"backup file {path} is corrupt: it contains no lines" in result.stderr


def test_restore_rejects_folder(tmp_path):
    result = run_csdp(tmp_path / "target", "restore", str(tmp_path))

    assert result.returncode == 2
    assert "is a directory" in result.stderr
