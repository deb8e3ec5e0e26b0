"""Numbered migrations of the SDK's SQLite file, including a file written before they existed."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from contextlib import closing

import msgspec
import pytest

from client_sdk import EventState
from client_sdk.migrations import LATEST_VERSION, MIGRATIONS, NewerFileError
from client_sdk.store import LocalStore
from sdk_helpers import ORDER, server_events
from shared_schema import LEGACY_SCHEMA_VERSION, ProposedEvent, WorkOrderStatus

# The layout that SDK releases before numbered migrations wrote, with user_version 0.
UNVERSIONED_LAYOUT = (
    "CREATE TABLE outbox ("
    " sequence INTEGER PRIMARY KEY AUTOINCREMENT,"
    " client_event_id TEXT NOT NULL UNIQUE,"
    " work_order_id TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " event TEXT NOT NULL,"
    " decision TEXT,"
    " recorded_at TEXT NOT NULL)",
    "CREATE INDEX outbox_status ON outbox (status, sequence)",
    "CREATE TABLE confirmed_work_orders (work_order_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL)",
    "CREATE TABLE sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: it tests the device's file."""
    return "sqlite"


def write_unversioned_file(path, event: ProposedEvent) -> None:
    """Create a device file in the old layout holding one pending event, as an older app left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as raw:
        for statement in UNVERSIONED_LAYOUT:
            raw.execute(statement)
        # Older SDKs wrote events without schema_version.
        document = msgspec.to_builtins(event)
        del document["schema_version"]
        raw.execute(
            "INSERT INTO outbox (client_event_id, work_order_id, status, event, recorded_at) VALUES (?, ?, ?, ?, ?)",
            [str(event.client_event_id), event.work_order_id, "PENDING", msgspec.json.encode(document).decode(), "2026-01-01T00:00:00+00:00"],
        )
        raw.execute("INSERT INTO sync_meta (key, value) VALUES ('cursor', '2')")
        raw.commit()


def user_version(path) -> int:
    with closing(sqlite3.connect(path)) as raw:
        return raw.execute("PRAGMA user_version").fetchone()[0]


def old_event() -> ProposedEvent:
    return ProposedEvent(
        client_event_id=uuid.uuid4(),
        work_order_id=ORDER,
        type="accepted",
        occurred_at=dt.datetime.now(dt.timezone.utc),
        base_version=2,
        device_id="tablet-e-17",
    )


def test_unversioned_file_migrated_and_synced(demo_server, tablets):
    event = old_event()
    path = tablets.folder / "tablet.sqlite"
    write_unversioned_file(path, event)

    client = tablets.open()

    assert client.store.layout_version_found == 0
    assert user_version(path) == LATEST_VERSION
    [entry] = client.pending()
    assert entry.event.client_event_id == event.client_event_id
    assert entry.event.schema_version == LEGACY_SCHEMA_VERSION
    assert entry.local_rejection is None
    assert client.cursor == "2"
    report = client.sync()
    assert report.accepted == 1
    assert client.event_state(event.client_event_id) is EventState.CONFIRMED
    assert [item.client_event_id for item in server_events(demo_server, ORDER)][-1] == event.client_event_id
    assert client.work_order(ORDER).status is WorkOrderStatus.ACCEPTED


def test_new_file_gets_latest_layout(tmp_path):
    store = LocalStore(tmp_path / "new.sqlite")
    store.close()

    assert store.layout_version_found == 0
    assert user_version(tmp_path / "new.sqlite") == LATEST_VERSION


def test_reopen_runs_no_migration(tmp_path):
    LocalStore(tmp_path / "tablet.sqlite").close()

    reopened = LocalStore(tmp_path / "tablet.sqlite")
    reopened.close()

    assert reopened.layout_version_found == LATEST_VERSION


def test_newer_file_refused(tmp_path):
    path = tmp_path / "tablet.sqlite"
    LocalStore(path).close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")

    with pytest.raises(NewerFileError, match="update the app"):
        LocalStore(path)


def test_migrations_numbered_in_order():
    assert [migration.version for migration in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def test_failed_migration_rolled_back(tmp_path, monkeypatch):
    import client_sdk.migrations as migrations

    broken = migrations.Migration(LATEST_VERSION + 1, "broken", ("CREATE TABLE extra (id INTEGER)", "NOT SQL"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST_VERSION", LATEST_VERSION + 1)

    with pytest.raises(sqlite3.OperationalError):
        LocalStore(tmp_path / "tablet.sqlite")

    assert user_version(tmp_path / "tablet.sqlite") == LATEST_VERSION
    with closing(sqlite3.connect(tmp_path / "tablet.sqlite")) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "extra" not in tables


def test_concurrent_open_migrates_once(tmp_path):
    path = tmp_path / "tablet.sqlite"
    errors: list[BaseException] = []
    stores: list[LocalStore] = []

    def open_store() -> None:
        try:
            stores.append(LocalStore(path))
        except BaseException as exc:  # noqa: BLE001 - the test reports every failure of the thread
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()

    assert errors == []
    assert user_version(path) == LATEST_VERSION
