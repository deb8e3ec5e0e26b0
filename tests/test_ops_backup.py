"""Backup and restore: SQLite -> PostgreSQL and PostgreSQL -> PostgreSQL give identical projections and KPI.

The source store is the parametrised `settings` store (SQLite, then
PostgreSQL); the target is always a new PostgreSQL schema. Projections are
compared row by row through the stores' own readers, and the API output of
a server on each store is compared as JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from api_helpers import all_changes, assigned, created, event, post_batch
from catalog_helpers import contract, engineer, post_catalog
from conftest import LiveServer, start_server, stop_server
from rich.console import Console

from server.backup.run import run_backup, run_restore
from server.config import Settings
from server.projections.compare import JSON_COLUMNS, VALUE_COLUMNS
from server.projections.console import open_projection_tables
from server.projections.names import EVENT_AUDIENCE, KPI_ORDER_HISTORY, WORK_ORDER_TIMELINE, WORK_ORDERS_CURRENT
from shared_schema import Role

UTC = dt.timezone.utc
QUIET = Console(quiet=True)
KPI_QUERY = {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "group_by": "engineer"}
ROW_PROJECTIONS = (WORK_ORDERS_CURRENT, WORK_ORDER_TIMELINE, EVENT_AUDIENCE, KPI_ORDER_HISTORY)


@pytest.fixture
def target(postgres_database: str, tmp_path) -> Iterator[Settings]:  # type: ignore[no-untyped-def]
    """Settings for a new, unmigrated PostgreSQL schema that the restore fills."""
    schema = f"r_{uuid.uuid4().hex[:12]}"
    run_sql(postgres_database, f"CREATE SCHEMA {schema}")
    yield Settings(var_dir=tmp_path / "target-var", database_url=f"{postgres_database}?search_path={schema}", sla_clock_seconds=0)
    run_sql(postgres_database, f"DROP SCHEMA {schema} CASCADE")


def run_sql(url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


def record_history(live: LiveServer) -> None:
    """Write orders, a full lifecycle, a rejection, catalog events and a denied request through the API."""
    with live.client(Role.ADMIN, "admin-1") as admin, live.client(Role.ENGINEER, "e-17") as tablet:
        post_catalog(admin, [engineer("e-40", name="Ana"), contract("ct-9")])
        post_batch(admin, [created("wo-b1", priority="P1"), assigned("wo-b1", "e-17"), created("wo-b2"), assigned("wo-b2", "e-21")])
        lifecycle = [
            event("wo-b1", "accepted", 2),
            event("wo-b1", "travel_started", 3),
            event("wo-b1", "arrived", 4),
            event("wo-b1", "work_started", 5),
            event("wo-b1", "completed", 6, {"fixed": True, "summary": "replaced the encoder"}),
            event("wo-b2", "accepted", 2),
        ]
        decisions = post_batch(tablet, lifecycle)
        assert [d["status"] for d in decisions][:5] == ["ACCEPTED"] * 5
        assert decisions[5]["status"] != "ACCEPTED"
        post_batch(admin, [event("wo-b1", "closed", 7)])
        assert tablet.get("/v1/audit").status_code == 403


def wait_for_kpi(live: LiveServer) -> None:
    """Wait until the KPI projector has applied every event, so the KPI figures are final."""
    with live.client(Role.MANAGER, "m-1") as manager:
        deadline = time.monotonic() + 15
        while True:
            response = manager.get("/v1/kpi", params=KPI_QUERY)
            assert response.status_code == 200, response.text
            if response.json()["projector"]["positions_behind"] == 0:
                return
            assert time.monotonic() < deadline, "the KPI projector did not catch up"
            time.sleep(0.1)


def api_view(live: LiveServer) -> dict[str, Any]:
    """Read everything an office user and an engineer can see, without the fields that depend on the read time."""
    with live.client(Role.ADMIN, "admin-1") as admin, live.client(Role.ENGINEER, "e-17") as tablet:
        orders = admin.get("/v1/work-orders", params={"limit": 500}).json()["items"]
        view: dict[str, Any] = {"orders": orders, "changes": all_changes(admin), "engineer_changes": all_changes(tablet)}
        view["timelines"] = {o["work_order_id"]: admin.get(f"/v1/work-orders/{o['work_order_id']}/timeline").json() for o in orders}
        for entity in ("engineers", "sites", "assets", "contracts"):
            view[entity] = admin.get(f"/v1/catalog/{entity}").json()
        view["audit"] = admin.get("/v1/audit", params={"limit": 500}).json()
        for group_by in ("engineer", "asset", "contract", "day"):
            kpi = admin.get("/v1/kpi", params={**KPI_QUERY, "group_by": group_by}).json()
            kpi.pop("projector")
            view[f"kpi_{group_by}"] = kpi
    return view


def projection_rows(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Read every row of the event projections through the store's own reader, normalised for comparison."""

    async def read() -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        async with open_projection_tables(settings) as tables, tables.final_transaction(hold_ingestion=False):
            for projection in ROW_PROJECTIONS:
                key_width = 1 if projection == WORK_ORDERS_CURRENT else 2
                columns = VALUE_COLUMNS[projection]
                found = []
                async for page in tables.rows(projection, rebuilt=False):
                    for row in page:
                        key, values = row[:key_width], row[key_width:]
                        if projection == WORK_ORDER_TIMELINE:
                            key = key[:1]  # entry ids are surrogate keys; the order within an order is kept
                        found.append((*key, *(normalised(column, value) for column, value in zip(columns, values))))
                rows[projection] = found
        return rows

    return asyncio.run(read())


def normalised(column: str, value: Any) -> Any:
    """Bring one store's column value to a common form: SQLite keeps instants as text and booleans as 0 or 1."""
    if column in JSON_COLUMNS:
        return msgspec.json.decode(value)
    if isinstance(value, str) and column in ("effective_time", "updated_at"):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if column == "fixed" and value is not None:
        return bool(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    return value


def serve_view(settings: Settings) -> dict[str, Any]:
    server, thread, base_url = start_server(settings)
    try:
        return api_view(LiveServer(base_url=base_url, settings=settings))
    finally:
        stop_server(server, thread)


def test_round_trip_gives_identical_projections_and_kpi(settings, target, tmp_path):
    source = Settings(var_dir=settings.var_dir, database_url=settings.database_url, sla_clock_seconds=0)
    server, thread, base_url = start_server(source, demo=True)
    live = LiveServer(base_url=base_url, settings=source)
    try:
        record_history(live)
        wait_for_kpi(live)
        before = api_view(live)
    finally:
        stop_server(server, thread)
    backup_file = tmp_path / "site.csdp.jsonl.gz"

    writer = run_backup(source, backup_file, 3, QUIET)
    result = run_restore(target, backup_file, 3, QUIET)

    assert writer.counts == result.counts
    assert result.counts["events"] == len(before["changes"])
    assert result.counts["denied_requests"] >= 1
    assert result.counts["catalog_events"] >= 2
    assert result.rebuild.events == result.counts["events"]
    source_rows = projection_rows(source)
    target_rows = projection_rows(target)
    for projection in ROW_PROJECTIONS:
        assert target_rows[projection] == source_rows[projection], projection
    assert len(source_rows[WORK_ORDERS_CURRENT]) == 5
    # A server on the restored store shows the same orders, feeds, catalog, audit and KPI.
    target.var_dir.mkdir(parents=True, exist_ok=True)
    after = serve_view(target)
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name
    assert before["kpi_engineer"]["groups"], "the KPI figures are empty, so the comparison would prove nothing"


def test_restored_store_accepts_new_events(settings, target, tmp_path):
    source = Settings(var_dir=settings.var_dir, database_url=settings.database_url, sla_clock_seconds=0)
    server, thread, base_url = start_server(source, demo=True)
    try:
        with LiveServer(base_url=base_url, settings=source).client(Role.ADMIN, "admin-1") as admin:
            post_batch(admin, [created("wo-n1")])
    finally:
        stop_server(server, thread)
    backup_file = tmp_path / "site.jsonl.gz"
    run_backup(source, backup_file, 1000, QUIET)
    run_restore(target, backup_file, 1000, QUIET)

    server, thread, base_url = start_server(target)
    try:
        with LiveServer(base_url=base_url, settings=target).client(Role.ADMIN, "admin-1") as admin:
            decisions = post_batch(admin, [created("wo-n2")])
            denied = httpx.get(f"{base_url}/v1/audit", headers={"Authorization": "Bearer not-a-token"})
            changes = all_changes(admin)
    finally:
        stop_server(server, thread)

    assert decisions[0]["status"] == "ACCEPTED"
    # The position counter continues after the restored log, with no gap and no reuse.
    assert decisions[0]["global_position"] == len(changes)
    assert [item["global_position"] for item in changes] == list(range(1, len(changes) + 1))
    assert denied.status_code == 401


def test_backup_during_writes_is_consistent(settings, tmp_path):
    """A backup taken while batches commit contains whole batches only: positions and versions without gaps."""
    source = Settings(var_dir=settings.var_dir, database_url=settings.database_url, sla_clock_seconds=0)
    server, thread, base_url = start_server(source)
    stop = threading.Event()
    written = []

    def write() -> None:
        with LiveServer(base_url=base_url, settings=source).client(Role.ADMIN, "admin-1") as admin:
            index = 0
            while not stop.is_set():
                order = f"wo-c{index}"
                post_batch(admin, [created(order), assigned(order, "e-1"), event(order, "note_added", 2, {"text": "x"})])
                written.append(order)
                index += 1

    writer_thread = threading.Thread(target=write)
    writer_thread.start()
    try:
        while len(written) < 5:
            time.sleep(0.05)
        run_backup(source, tmp_path / "live.jsonl.gz", 7, QUIET)
        written_at_backup = len(written)
    finally:
        stop.set()
        writer_thread.join(timeout=30)
        stop_server(server, thread)
    target = Settings(var_dir=tmp_path / "restored")

    result = run_restore(target, tmp_path / "live.jsonl.gz", 7, QUIET)

    with sqlite3.connect(target.sqlite_path) as connection:
        positions = [row[0] for row in connection.execute("SELECT global_position FROM events ORDER BY global_position")]
        versions = connection.execute(
            "SELECT work_order_id, group_concat(stream_version) FROM"
            " (SELECT work_order_id, stream_version FROM events ORDER BY work_order_id, stream_version)"
            " GROUP BY work_order_id"
        ).fetchall()
        accepted = connection.execute("SELECT count(*) FROM decisions WHERE global_position IS NOT NULL").fetchone()[0]
    assert positions == list(range(1, len(positions) + 1))
    assert all(stream == "1,2,3" for _, stream in versions), versions
    assert accepted == len(positions)
    assert result.counts["events"] == len(positions)
    assert 5 * 3 <= len(positions) <= (written_at_backup + 1) * 3
