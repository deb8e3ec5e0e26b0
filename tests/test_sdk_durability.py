"""The outbox survives SIGKILL at each point of a push, and two processes share one SQLite file.

Each test runs the SDK in a real subprocess (tests/sdk_worker.py) against
the test server on loopback. The kill tests make the worker pause at a
named point of the push and then kill it with SIGKILL, so the process dies
exactly there, as when the operating system ends an app.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from test_projections import fetch_value

from client_sdk import testpoints
from sdk_helpers import ENGINEER, ORDER, record_flow, server_events, server_state
from shared_schema import WorkOrderStatus

WORKER = Path(__file__).with_name("sdk_worker.py")
ROOT = WORKER.parent.parent


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: what it tests is the device's file, not the server's store."""
    return "sqlite"


def start_worker(server, path: Path, command: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = dict(os.environ)
    environment["CSDP_WORKER_TOKEN"] = server.token("engineer", ENGINEER)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(WORKER.parent)])
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path), server.base_url, f"tablet-{ENGINEER}", ENGINEER, command, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(marker: Path, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the worker exited with {process.returncode} first: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the worker did not reach the pause point within {timeout} s")
        time.sleep(0.02)


def kill_at(server, path: Path, point: str, tmp_path: Path) -> None:
    """Run one sync in a worker, pause it at `point`, and kill it with SIGKILL there."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / f"paused-{point}"
    worker = start_worker(
        server,
        path,
        "sync",
        env={testpoints.PAUSE_AT_ENV: point, testpoints.PAUSE_FILE_ENV: str(marker)},
    )
    wait_for_file(marker, worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL


def outbox_rows(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return raw.execute("SELECT client_event_id, status FROM outbox ORDER BY sequence").fetchall()


# What the server and the outbox hold right after the kill: (events the server
# accepted from the device, entries still pending in the outbox). The worker
# sends batches of 2 events.
KILL_POINTS = {
    testpoints.BEFORE_SEND: (0, 5),
    testpoints.AFTER_SEND: (2, 5),
    testpoints.AFTER_STORE: (2, 3),
}


@pytest.mark.parametrize("point", testpoints.POINTS)
def test_kill_during_push_loses_nothing(demo_server, tablets, tmp_path, point):
    client = tablets.open()
    client.sync()
    entries = record_flow(client)
    client.close()
    ids = [str(entry.event.client_event_id) for entry in entries]

    kill_at(demo_server, client.store.path, point, tmp_path)

    accepted_on_server, still_pending = KILL_POINTS[point]
    rows = outbox_rows(client.store.path)
    assert [row[0] for row in rows] == ids
    assert sum(status == "PENDING" for _, status in rows) == still_pending
    device_events = [event for event in server_events(demo_server, ORDER) if event.device_id == f"tablet-{ENGINEER}"]
    assert len(device_events) == accepted_on_server

    restarted = tablets.open()
    report = restarted.sync()

    assert report.accepted == still_pending
    # Events the server had decided before the kill come back as replays, not as new events.
    assert report.replays == still_pending - (5 - accepted_on_server)
    assert restarted.pending_count() == 0
    feed = [str(event.client_event_id) for event in server_events(demo_server, ORDER) if event.device_id == f"tablet-{ENGINEER}"]
    assert feed == ids
    decisions = fetch_value(demo_server.settings, "SELECT count(*) FROM decisions WHERE subject = $1", ENGINEER)
    assert decisions == 5
    assert server_state(demo_server, ORDER).status is WorkOrderStatus.COMPLETED
    assert restarted.work_order(ORDER) == server_state(demo_server, ORDER)


def test_kill_after_send_twice(demo_server, tablets, tmp_path):
    client = tablets.open()
    client.sync()
    entries = record_flow(client, event_types=("accepted", "travel_started", "arrived"))
    client.close()

    kill_at(demo_server, client.store.path, testpoints.AFTER_SEND, tmp_path / "first")
    kill_at(demo_server, client.store.path, testpoints.AFTER_SEND, tmp_path / "second")

    restarted = tablets.open()
    report = restarted.sync()
    assert report.replays == 2
    assert report.accepted == 3
    feed = [event.client_event_id for event in server_events(demo_server, ORDER) if event.device_id == f"tablet-{ENGINEER}"]
    assert feed == [entry.event.client_event_id for entry in entries]


def test_pause_point_off_by_default():
    testpoints.reach(testpoints.BEFORE_SEND)


def test_two_processes_share_file(demo_server, tablets, tmp_path):
    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    client.close()
    notes_each = 25

    workers = [start_worker(demo_server, client.store.path, "record-with-loop", str(notes_each)) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]

    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr
    reports = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    recorded = [event_id for report in reports for event_id in report["ids"]]
    assert len(set(recorded)) == 2 * notes_each
    rows = outbox_rows(client.store.path)
    assert len(rows) == 2 * notes_each + 1
    assert {status for _, status in rows} == {"ACCEPTED"}
    notes = [str(event.client_event_id) for event in server_events(demo_server, ORDER) if event.type == "note_added"]
    assert sorted(notes) == sorted(recorded)
    decisions = fetch_value(demo_server.settings, "SELECT count(*) FROM decisions WHERE subject = $1", ENGINEER)
    assert decisions == 2 * notes_each + 1
    reopened = tablets.open()
    assert reopened.work_order(ORDER).version == server_state(demo_server, ORDER).version


def test_threads_share_client(demo_server, tablets):
    """An app thread records while another thread syncs the same client."""
    import threading

    client = tablets.open()
    client.sync()
    client.record(ORDER, "accepted")
    client.sync()
    stop = threading.Event()
    errors: list[BaseException] = []

    def sync_until_stopped() -> None:
        while not stop.is_set():
            try:
                client.sync()
            except BaseException as exc:  # noqa: BLE001 - the test reports every failure of the thread
                errors.append(exc)
                return

    syncer = threading.Thread(target=sync_until_stopped)
    syncer.start()
    recorded = [client.record(ORDER, "note_added", {"text": f"note {number}"}) for number in range(40)]
    stop.set()
    syncer.join(timeout=30)
    client.sync()

    assert errors == []
    assert client.pending_count() == 0
    notes = [event.client_event_id for event in server_events(demo_server, ORDER) if event.type == "note_added"]
    assert notes == [entry.event.client_event_id for entry in recorded]


def test_sync_lock_timeout_raises(demo_server, tablets):
    from client_sdk import SyncError
    from client_sdk.locking import FileSyncLock, SyncLockTimeout

    client = tablets.open(lock_timeout=0.2)
    client.record(ORDER, "accepted")
    holder = FileSyncLock(client.store.path)

    with holder, pytest.raises(SyncLockTimeout, match="retry the sync later") as caught:
        client.sync()

    assert isinstance(caught.value, SyncError)
    assert client.pending_count() == 1
    assert client.sync().accepted == 1
