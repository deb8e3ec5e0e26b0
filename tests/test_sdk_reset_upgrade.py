"""SyncClient when the server's store is restored from an older copy, and when the server needs a newer app."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
import uvicorn
from conftest import LiveServer, stop_server

import client_sdk.client
import client_sdk.version
from client_sdk import Activity, EventState, UpgradeRequired
from sdk_helpers import ORDER, FaultTransport, Tablets, record_flow, server_events, server_state
from server.app import create_app
from shared_schema import SCHEMA_VERSION, DecisionStatus, WorkOrderStatus


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite, whose store file a test can copy and put back."""
    return "sqlite"


class RestartableServer(LiveServer):
    """A live server on a fixed loopback port that a test can stop and start again on the same store."""

    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    def start(self, *, demo: bool) -> None:
        port = int(self.base_url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            create_app(self.settings, demo=demo), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the test server did not start on port {port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            stop_server(self.server, self.thread)
            self.server = None


@pytest.fixture
def restartable(settings):
    from conftest import free_port

    server = RestartableServer(base_url=f"http://127.0.0.1:{free_port()}", settings=settings)
    server.start(demo=True)
    yield server
    server.stop()


@pytest.fixture
def tablets(restartable, tmp_path):
    factory = Tablets(restartable, tmp_path / "devices")
    yield factory
    factory.close_all()


def back_up(database: Path, copy: Path) -> None:
    """Copy a live SQLite store with the backup API, as an operator's backup job would."""
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)


def restore(server: RestartableServer, copy: Path) -> None:
    """Stop the server, put the older copy in place of its store and start it again on the same port."""
    server.stop()
    database = server.settings.sqlite_path
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, database)
    server.start(demo=False)


# -- reset -----------------------------------------------------------------------


def test_reset_after_restore_keeps_pending(restartable, tablets, tmp_path):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    backup = tmp_path / "backup.sqlite3"
    back_up(restartable.settings.sqlite_path, backup)
    lost = record_flow(client, event_types=("travel_started", "arrived"))
    client.sync()
    cursor_before = int(client.cursor)
    pending = client.record(ORDER, "work_started")
    restore(restartable, backup)

    report = client.sync()

    assert report.reset is True
    assert report.accepted == 3
    assert report.rejected == 0
    state = server_state(restartable, ORDER)
    assert state.status is WorkOrderStatus.IN_PROGRESS
    assert state.version == 6
    ids = [event.client_event_id for event in server_events(restartable, ORDER)]
    expected = [entry.event.client_event_id for entry in (*lost, pending)]
    # The lost events went again under their original ids, each stored once.
    assert ids[-3:] == expected
    assert len(ids) == len(set(ids)) == 6
    assert client.pending_count() == 0
    assert client.work_order(ORDER) == state
    assert int(client.cursor) == cursor_before + 1
    states = client.event_states()
    assert [states[event_id] for event_id in expected] == [EventState.CONFIRMED] * 3


def test_reset_on_pull_drops_confirmed_only(restartable, tablets, tmp_path):
    client = tablets.open()
    client.sync()
    backup = tmp_path / "backup.sqlite3"
    back_up(restartable.settings.sqlite_path, backup)
    client.record(ORDER, "accepted")
    client.sync()
    rejected = client.record(ORDER, "completed")
    client.sync()
    assert client.event_state(rejected.event.client_event_id) is EventState.REJECTED
    restore(restartable, backup)
    transport = FaultTransport()
    reopened = tablets.open(transport=transport)

    pulled = reopened.pull()

    changes = transport.requests("GET", "/v1/sync/changes")
    assert len(changes) == 2
    assert pulled == 1
    assert reopened.cursor == "2"
    # The accepted event is queued again; the rejection stays final.
    assert reopened.pending_count() == 1
    assert reopened.event_state(rejected.event.client_event_id) is EventState.REJECTED
    assert reopened.work_order(ORDER).status is WorkOrderStatus.ACCEPTED
    reopened.sync()
    assert server_state(restartable, ORDER).status is WorkOrderStatus.ACCEPTED
    assert reopened.pending_count() == 0


# -- upgrade required ---------------------------------------------------------------


def test_unsupported_protocol_keeps_queue(restartable, tablets, monkeypatch):
    transport = FaultTransport()
    client = tablets.open(transport=transport)
    client.sync()
    entries = record_flow(client, event_types=("accepted", "travel_started"))
    monkeypatch.setattr(client_sdk.version, "PROTOCOL_VERSION", 2)

    # This SDK is newer than the server, so the message requests a server update.
    with pytest.raises(UpgradeRequired, match="The server needs an update"):
        client.sync()

    status = client.status()
    assert status.activity is Activity.BLOCKED
    assert "Protocol version 2 is newer than this server" in status.blocked_reason
    assert "Update the app" not in status.blocked_reason
    assert status.pending_count == 2
    assert [entry.event for entry in client.pending()] == [entry.event for entry in entries]
    sent = len(transport.sent)
    # While blocked, a sync sends nothing.
    with pytest.raises(UpgradeRequired):
        client.sync()
    assert len(transport.sent) == sent
    # The app is updated: another SDK version that speaks a supported protocol.
    monkeypatch.setattr(client_sdk.version, "PROTOCOL_VERSION", 1)
    monkeypatch.setattr(client_sdk.version, "SDK_VERSION", "99.0.0")
    report = client.sync()
    assert report.accepted == 2
    assert client.status().activity is Activity.IDLE
    assert client.status().blocked_reason is None


def test_newer_schema_keeps_queue(restartable, tablets, monkeypatch):
    client = tablets.open()
    client.sync()
    monkeypatch.setattr(client_sdk.client, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    entry = client.record(ORDER, "accepted")

    with pytest.raises(UpgradeRequired, match="newer than this server"):
        client.sync()

    assert client.status().activity is Activity.BLOCKED
    assert client.pending()[0].event == entry.event
    assert server_state(restartable, ORDER).status is WorkOrderStatus.ASSIGNED
    client.retry_blocked()
    assert client.status().blocked_reason is None
    # The server is still the older one, so the next sync is blocked again and the event stays.
    with pytest.raises(UpgradeRequired):
        client.sync()
    assert client.pending_count() == 1


def test_decision_statuses_unchanged_by_block(restartable, tablets, monkeypatch):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    monkeypatch.setattr(client_sdk.version, "PROTOCOL_VERSION", 7)

    with pytest.raises(UpgradeRequired):
        client.pull()

    assert [entry.status for entry in client.outbox()] == [DecisionStatus.ACCEPTED.value]
    assert client.work_order(ORDER).status is WorkOrderStatus.ACCEPTED
