"""A restore gives the log a new epoch, and a tablet resets on it even after the log has passed its cursor."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from api_helpers import created, post_batch
from rich.console import Console
from test_projections import fetch_value
from test_sdk_reset_upgrade import RestartableServer

from client_sdk import EventState

from conftest import free_port
from sdk_helpers import ORDER, Tablets, server_events, server_state
from server.backup.run import run_backup, run_restore
from server.config import Settings
from shared_schema import WorkOrderStatus

QUIET = Console(quiet=True)


def _run_sql(url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def new_store(settings: Settings, store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """Return a factory of settings for new, empty stores of the same kind and with the same token secret."""
    schemas: list[str] = []
    database_url = request.getfixturevalue("postgres_database") if store_kind == "postgres" else ""

    def make() -> Settings:
        name = f"r_{uuid.uuid4().hex[:12]}"
        if store_kind == "sqlite":
            return Settings(var_dir=settings.var_dir, database_url=f"sqlite:///{tmp_path / name}.sqlite3")
        _run_sql(database_url, f"CREATE SCHEMA {name}")
        schemas.append(name)
        return Settings(var_dir=settings.var_dir, database_url=f"{database_url}?search_path={name}")

    yield make
    for name in schemas:
        _run_sql(database_url, f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def restartable(settings: Settings) -> Iterator[RestartableServer]:
    server = RestartableServer(base_url=f"http://127.0.0.1:{free_port()}", settings=settings)
    server.start(demo=True)
    yield server
    server.stop()


@pytest.fixture
def tablets(restartable: RestartableServer, tmp_path: Path) -> Iterator[Tablets]:
    factory = Tablets(restartable, tmp_path / "devices")
    yield factory
    factory.close_all()


def epoch_of(settings: Settings) -> tuple[str, int]:
    return (
        str(fetch_value(settings, "SELECT epoch FROM log_identity")),
        int(fetch_value(settings, "SELECT base_position FROM log_identity")),  # type: ignore[arg-type]
    )


def test_restore_gives_new_epoch(settings, new_store, restartable, tmp_path):
    source_epoch, source_base = epoch_of(settings)
    backup_file = tmp_path / "site.jsonl.gz"
    run_backup(settings, backup_file, 100, QUIET)
    first, second = new_store(), new_store()

    run_restore(first, backup_file, 100, QUIET)
    run_restore(second, backup_file, 100, QUIET)

    epochs = {source_epoch, epoch_of(first)[0], epoch_of(second)[0]}
    assert len(epochs) == 3
    assert all(len(epoch) == 32 for epoch in epochs)
    assert source_base == 0
    # Both restored logs share every backed-up position with the source.
    head = fetch_value(settings, "SELECT coalesce(max(global_position), 0) FROM events")
    assert epoch_of(first)[1] == epoch_of(second)[1] == head


def test_restore_base_is_backup_head(settings, new_store, restartable, tmp_path):
    with restartable.client("dispatcher", "d-1") as http:
        post_batch(http, [created("wo-e1"), created("wo-e2")])
    head = int(fetch_value(settings, "SELECT max(global_position) FROM events"))  # type: ignore[arg-type]
    backup_file = tmp_path / "site.jsonl.gz"
    run_backup(settings, backup_file, 100, QUIET)
    target = new_store()

    run_restore(target, backup_file, 100, QUIET)

    assert head > 0
    assert epoch_of(target)[1] == head
    assert epoch_of(target)[0] != epoch_of(settings)[0]


def test_tablet_resets_after_restored_log_passed_its_cursor(restartable, tablets, new_store, tmp_path):
    """The trial's scenario: other clients write past the tablet's cursor before it syncs again."""
    tablet = tablets.open()
    tablet.sync()
    tablet.record(ORDER, "accepted")
    tablet.sync()
    backup_file = tmp_path / "site.jsonl.gz"
    run_backup(restartable.settings, backup_file, 100, QUIET)
    lost = tablet.record(ORDER, "travel_started")
    assert tablet.sync().accepted == 1
    cursor = int(tablet.cursor)
    old_epoch = tablet.log_epoch
    target = new_store()
    restartable.stop()
    run_restore(target, backup_file, 100, QUIET)
    restartable.settings = target
    restartable.start(demo=False)
    with restartable.client("dispatcher", "d-1") as http:
        decisions = post_batch(http, [created(f"wo-other-{number}") for number in range(3)])
    assert [decision["status"] for decision in decisions] == ["ACCEPTED"] * 3
    assert int(fetch_value(target, "SELECT max(global_position) FROM events")) > cursor  # type: ignore[arg-type]

    report = tablet.sync()

    assert report.reset is True
    assert report.accepted == 1
    assert report.rejected == 0
    state = server_state(restartable, ORDER)
    assert state.status is WorkOrderStatus.EN_ROUTE
    ids = [event.client_event_id for event in server_events(restartable, ORDER)]
    # The lost event went again under its own id and is stored once.
    assert ids[-1] == lost.event.client_event_id
    assert len(ids) == len(set(ids))
    assert tablet.work_order(ORDER) == state
    assert tablet.event_state(lost.event.client_event_id) is EventState.CONFIRMED
    assert tablet.log_epoch == epoch_of(target)[0] != old_epoch
    assert tablet.pending_count() == 0
    # The next event builds on the restored order and is accepted.
    tablet.record(ORDER, "arrived")
    assert tablet.sync().accepted == 1
    assert server_state(restartable, ORDER).status is WorkOrderStatus.ON_SITE


def test_tablet_without_epoch_not_reset(restartable, tablets):
    """A file from an SDK that kept no epoch syncs as before and stores the server's epoch."""
    tablet = tablets.open()
    tablet.sync()
    tablet.store.set_meta("log_epoch", "")
    assert tablet.log_epoch is None
    tablet.record(ORDER, "accepted")

    report = tablet.sync()

    assert report.reset is False
    assert report.accepted == 1
    assert tablet.pending_count() == 0
    assert tablet.log_epoch == epoch_of(restartable.settings)[0]
