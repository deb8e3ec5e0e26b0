"""The catalog tables as projections of `catalog_events`: append-only log, rebuild, verify, migration."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
from api_helpers import Clients
from catalog_helpers import asset, command, contract, engineer, items, post_catalog, site, snapshot
from conftest import LiveServer
from test_projections import csdp, execute, fetch_value

from server.store.migrations import migrations

CATALOG_TABLES = ("engineers", "sites", "assets", "contracts")


def send_catalog(live: LiveServer) -> None:
    clients = Clients(live)
    try:
        manager = clients("manager", "mgr-1")
        post_catalog(
            manager,
            [
                site("site-a"),
                site("site-b", time_zone="America/Chicago"),
                engineer("e-1", home_site_id="site-a"),
                command("engineer_absence_recorded", "e-1", {"start": "2026-03-02T08:00:00Z", "end": "2026-03-03T08:00:00Z"}),
                asset("cnc-1"),
                snapshot("cnc-1", "2026-03-01T00:00:00Z", firmware="2"),
                snapshot("cnc-1", "2026-01-01T00:00:00Z", firmware="1"),
                contract("ct-1"),
            ],
        )
        post_catalog(manager, [asset("cnc-1", site_id="site-b", verb="updated"), site("site-a", verb="updated")])
    finally:
        clients.close()


@pytest.mark.parametrize("statement", ["UPDATE catalog_events SET entity_id = 'x'", "DELETE FROM catalog_events"])
def test_catalog_events_append_only(live_server, statement):
    send_catalog(live_server)

    expected = sqlite3.IntegrityError if live_server.settings.store_kind == "sqlite" else asyncpg.RestrictViolationError
    with pytest.raises(expected, match="append-only"):
        execute(live_server.settings, statement)

    assert fetch_value(live_server.settings, "SELECT count(*) FROM catalog_events") == 10


def test_catalog_events_no_truncate(live_server, store_kind):
    if store_kind == "sqlite":
        pytest.skip("SQLite has no TRUNCATE; its DELETE trigger covers a DELETE without WHERE")
    send_catalog(live_server)

    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        execute(live_server.settings, "TRUNCATE catalog_events")


def test_verify_catalog_equal_after_changes(live_server):
    send_catalog(live_server)

    result = csdp(live_server.settings, "projections", "verify")

    assert result.exit_code == 0, result.output
    for table in CATALOG_TABLES:
        assert f"{table}: equal" in result.output
    assert "assets: equal, 1 rows" in result.output
    assert "sites: equal, 2 rows" in result.output


def test_verify_catalog_names_corrupted_row(live_server):
    send_catalog(live_server)
    execute(live_server.settings, "UPDATE sites SET time_zone = 'Asia/Tokyo' WHERE site_id = $1", "site-b")
    execute(live_server.settings, "DELETE FROM contracts WHERE contract_id = $1", "ct-1")

    result = csdp(live_server.settings, "projections", "verify", "sites", "contracts", "assets")

    assert result.exit_code == 1, result.output
    assert "sites [site-b] time_zone: live 'Asia/Tokyo', rebuilt 'America/Chicago'" in result.output
    assert "contracts [ct-1] (row): live (no row), rebuilt present" in result.output
    assert "assets: equal" in result.output
    assert "work_orders_current" not in result.output


def test_verify_catalog_names_document_field(live_server):
    send_catalog(live_server)
    document = fetch_value(live_server.settings, "SELECT document FROM engineers WHERE engineer_id = $1", "e-1")
    text = document.decode() if isinstance(document, bytes) else document
    execute(
        live_server.settings,
        "UPDATE engineers SET document = $1 WHERE engineer_id = $2",
        text.replace('"skills":["fanuc"]', '"skills":["welding"]'),
        "e-1",
    )

    result = csdp(live_server.settings, "projections", "verify", "engineers")

    assert result.exit_code == 1, result.output
    assert "engineers [e-1] document.skills" in result.output


def test_rebuild_catalog_restores_rows(live_server):
    send_catalog(live_server)
    settings = live_server.settings
    execute(settings, "DELETE FROM assets")
    execute(settings, "UPDATE sites SET name = 'edited'")

    rebuilt = csdp(settings, "projections", "rebuild", "assets", "sites")
    verified = csdp(settings, "projections", "verify")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt sites, assets from 10 catalog events" in rebuilt.output
    assert "decisions and" not in rebuilt.output
    assert verified.exit_code == 0, verified.output
    clients = Clients(live_server)
    try:
        (document,) = items(clients("manager", "mgr-1"), "/v1/catalog/assets")
    finally:
        clients.close()
    assert document["site_id"] == "site-b"
    assert [snapshot["configuration"]["firmware"] for snapshot in document["configurations"]] == ["1", "2"]


def test_unknown_projection_name_rejected(live_server):
    result = csdp(live_server.settings, "projections", "verify", "parts")

    assert result.exit_code == 2
    assert "engineers" in result.output


def test_sqlite_migration_keeps_legacy_rows(tmp_path):
    """Rows written before migration 3 stay in legacy_* tables and the new tables start empty."""
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for version, script in migrations("sqlite")[:2]:
            connection.executescript(script)
            connection.execute("INSERT INTO schema_migrations VALUES (?, '2026-01-01T00:00:00+00:00')", (version,))
        connection.execute("INSERT INTO sites VALUES ('site-old', 'Old', 'Europe/Berlin')")
        connection.execute("INSERT INTO assets VALUES ('cnc-old', 'site-old', 'Haas', 'S-1')")
    finally:
        connection.close()

    from server.store import SQLiteStore

    async def migrate() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    asyncio.run(migrate())

    connection = sqlite3.connect(path)
    try:
        assert connection.execute("SELECT site_id FROM legacy_sites").fetchall() == [("site-old",)]
        assert connection.execute("SELECT asset_id FROM legacy_assets").fetchall() == [("cnc-old",)]
        assert connection.execute("SELECT count(*) FROM sites").fetchone() == (0,)
    finally:
        connection.close()
