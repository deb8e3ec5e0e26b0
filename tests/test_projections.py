"""`csdp projections rebuild` and `verify` on both stores, after real traffic through the API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import asyncpg
import pytest
from api_helpers import Clients, assigned, create_assigned, created, event, post_batch
from click.testing import CliRunner, Result
from conftest import LiveServer

from server.cli import main
from server.config import Settings
from simulators import fleet

PROJECTIONS = ("work_orders_current", "work_order_timeline", "event_audience")


def csdp(settings: Settings, *args: str) -> Result:
    """Run `csdp` in-process on the store of `settings`, as an operator would with CSDP_* variables set."""
    env = {"CSDP_VAR_DIR": str(settings.var_dir), "CSDP_DATABASE_URL": settings.database_url or None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def execute(settings: Settings, sql: str, *params: object) -> None:
    """Run one statement straight on the store's database, bypassing the server."""
    if settings.store_kind == "sqlite":
        connection = sqlite3.connect(settings.sqlite_path)
        try:
            connection.execute(sql.replace("$1", "?").replace("$2", "?"), params)
            connection.commit()
        finally:
            connection.close()
        return

    async def run() -> None:
        connection = await asyncpg.connect(settings.effective_database_url)
        try:
            await connection.execute(sql, *params)
        finally:
            await connection.close()

    asyncio.run(run())


def fetch_value(settings: Settings, sql: str, *params: object) -> object:
    if settings.store_kind == "sqlite":
        connection = sqlite3.connect(settings.sqlite_path)
        try:
            return connection.execute(sql.replace("$1", "?"), params).fetchone()[0]
        finally:
            connection.close()

    async def run() -> object:
        connection = await asyncpg.connect(settings.effective_database_url)
        try:
            return await connection.fetchval(sql, *params)
        finally:
            await connection.close()

    return asyncio.run(run())


def send_traffic(live: LiveServer) -> None:
    """Create orders, move them, reassign one and send proposals that are rejected or sent to review."""
    clients = Clients(live)
    try:
        dispatcher = clients("dispatcher", "d-1")
        engineer = clients("engineer", "e-17")
        create_assigned(dispatcher, "wo-1", "e-17")
        create_assigned(dispatcher, "wo-2", "e-17", priority="P1")
        post_batch(dispatcher, [created("wo-3"), assigned("wo-3", "e-21")])
        decisions = post_batch(
            engineer,
            [
                event("wo-1", "accepted", 2),
                event("wo-1", "travel_started", 2),
                event("wo-1", "arrived", 2),
                event("wo-1", "completed", 2),  # invalid_transition: work has not started
                event("wo-2", "accepted", 2),
                event("wo-3", "accepted", 2),  # engineer_not_assigned
            ],
        )
        post_batch(dispatcher, [event("wo-2", "reassigned", 3, {"engineer_id": "e-21"})])
        # Field work recorded against the version before the reassignment goes to review.
        review = post_batch(engineer, [event("wo-2", "travel_started", 3)])
    finally:
        clients.close()
    assert {decision["status"] for decision in decisions} == {"ACCEPTED", "REJECTED"}
    assert review[0]["status"] == "NEEDS_REVIEW"


def wait_kpi_caught_up(live: LiveServer, timeout: float = 30) -> None:
    """Poll GET /v1/kpi until the KPI projector has applied every event of the log."""
    params = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "group_by": "day"}
    deadline = time.monotonic() + timeout
    with Clients(live)("admin", "admin-1") as admin:
        while True:
            response = admin.get("/v1/kpi", params=params)
            assert response.status_code == 200, response.text
            projector = response.json()["projector"]
            if projector["positions_behind"] == 0:
                return
            assert time.monotonic() < deadline, f"the KPI projector did not catch up: {projector}"
            time.sleep(0.05)


def test_verify_equal_after_api_traffic(live_server):
    send_traffic(live_server)
    wait_kpi_caught_up(live_server)

    result = csdp(live_server.settings, "projections", "verify")

    assert result.exit_code == 0, result.output
    for projection in PROJECTIONS:
        assert f"{projection}: equal" in result.output


def test_verify_equal_after_fleet_simulation(live_server, capsys):
    arguments = ["--server-url", live_server.base_url, "--var-dir", str(live_server.settings.var_dir)]
    arguments += ["--seed", "7", "--engineers", "3", "--orders", "12", "--max-ticks", "400", "--json"]
    if live_server.settings.database_url:
        arguments += ["--database-url", live_server.settings.database_url]
    code = fleet.main(arguments)
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 0, summary["violations"]

    result = csdp(live_server.settings, "projections", "verify", "--batch-size", "7")

    assert result.exit_code == 0, result.output
    for projection in PROJECTIONS:
        assert f"{projection}: equal" in result.output


def test_verify_names_corrupted_row(live_server):
    send_traffic(live_server)
    settings = live_server.settings
    execute(settings, "UPDATE work_orders_current SET status = 'cancelled' WHERE work_order_id = $1", "wo-1")

    result = csdp(settings, "projections", "verify")

    assert result.exit_code == 1, result.output
    assert "work_orders_current: 1 differing rows" in result.output
    assert "work_orders_current [wo-1] status: live 'cancelled', rebuilt 'on_site'" in result.output
    assert "work_order_timeline: equal" in result.output
    assert "event_audience: equal" in result.output


def test_verify_and_rebuild_kpi_history(live_server):
    send_traffic(live_server)
    wait_kpi_caught_up(live_server)
    settings = live_server.settings
    position = fetch_value(
        settings,
        "SELECT global_position FROM kpi_order_history WHERE work_order_id = $1 AND type = 'assigned'",
        "wo-1",
    )
    execute(
        settings,
        "UPDATE kpi_order_history SET engineer_id = 'e-99' WHERE work_order_id = $1 AND global_position = $2",
        "wo-1",
        position,
    )

    result = csdp(settings, "projections", "verify", "kpi_order_history")

    assert result.exit_code == 1, result.output
    assert "kpi_order_history: 1 differing rows" in result.output
    assert f"kpi_order_history [wo-1, {position}] engineer_id: live 'e-99', rebuilt 'e-17'" in result.output

    rebuilt = csdp(settings, "projections", "rebuild", "kpi_order_history")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt kpi_order_history from 14 decisions and 11 events" in rebuilt.output
    engineer = fetch_value(
        settings, "SELECT engineer_id FROM kpi_order_history WHERE work_order_id = $1 AND global_position = $2", "wo-1", position
    )
    assert engineer == "e-17"
    checkpoint = fetch_value(settings, "SELECT position FROM projector_checkpoints WHERE name = $1", "kpi")
    assert checkpoint == 11
    verified = csdp(settings, "projections", "verify")
    assert verified.exit_code == 0, verified.output
    assert "kpi_order_history: equal" in verified.output


def test_rebuild_kpi_history_moves_checkpoint(live_server):
    send_traffic(live_server)
    wait_kpi_caught_up(live_server)
    settings = live_server.settings
    # The rows go but the checkpoint stays, so the projector does not refill the table by itself.
    execute(settings, "DELETE FROM kpi_order_history")

    assert csdp(settings, "projections", "verify", "kpi_order_history").exit_code == 1
    rebuilt = csdp(settings, "projections", "rebuild", "kpi_order_history")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert fetch_value(settings, "SELECT count(*) FROM kpi_order_history") > 0
    assert fetch_value(settings, "SELECT position FROM projector_checkpoints WHERE name = $1", "kpi") == 11
    with Clients(live_server)("dispatcher", "d-1") as dispatcher:
        create_assigned(dispatcher, "wo-4", "e-17")
    wait_kpi_caught_up(live_server)
    result = csdp(settings, "projections", "verify", "kpi_order_history")
    assert result.exit_code == 0, result.output


def test_verify_names_json_field_and_missing_rows(live_server):
    send_traffic(live_server)
    settings = live_server.settings
    state = fetch_value(settings, "SELECT state FROM work_orders_current WHERE work_order_id = $1", "wo-3")
    text = state.decode() if isinstance(state, bytes) else state
    execute(
        settings,
        "UPDATE work_orders_current SET state = $1 WHERE work_order_id = $2",
        text.replace('"title":"Spindle alarm 2041"', '"title":"edited"'),
        "wo-3",
    )
    execute(settings, "DELETE FROM event_audience WHERE engineer_id = $1", "e-21")

    result = csdp(settings, "projections", "verify")

    assert result.exit_code == 1, result.output
    assert "work_orders_current [wo-3] state.title: live \"edited\", rebuilt \"Spindle alarm 2041\"" in result.output
    assert "event_audience [e-21, " in result.output
    assert "live (no row), rebuilt present" in result.output


def test_rebuild_restores_corrupted_row(live_server):
    send_traffic(live_server)
    settings = live_server.settings
    execute(
        settings, "UPDATE work_orders_current SET status = 'cancelled', version = 99 WHERE work_order_id = $1", "wo-1"
    )
    execute(settings, "DELETE FROM work_order_timeline WHERE work_order_id = $1", "wo-2")
    assert csdp(settings, "projections", "verify").exit_code == 1

    rebuilt = csdp(settings, "projections", "rebuild")

    assert rebuilt.exit_code == 0, rebuilt.output
    summary = (
        "rebuilt work_orders_current, work_order_timeline, event_audience, kpi_order_history"
        " from 14 decisions and 11 events"
    )
    assert summary in rebuilt.output
    assert fetch_value(settings, "SELECT status FROM work_orders_current WHERE work_order_id = $1", "wo-1") == "on_site"
    assert fetch_value(settings, "SELECT version FROM work_orders_current WHERE work_order_id = $1", "wo-1") == 5
    verified = csdp(settings, "projections", "verify")
    assert verified.exit_code == 0, verified.output
    with Clients(live_server)("dispatcher", "d-1") as dispatcher:
        timeline = dispatcher.get("/v1/work-orders/wo-2/timeline").json()
    assert [entry["status"] for entry in timeline] == ["ACCEPTED", "ACCEPTED", "ACCEPTED", "ACCEPTED", "NEEDS_REVIEW"]


def test_rebuild_one_named_projection(live_server):
    send_traffic(live_server)
    settings = live_server.settings
    execute(settings, "UPDATE work_orders_current SET priority = 'P4' WHERE work_order_id = $1", "wo-2")
    execute(settings, "DELETE FROM work_order_timeline WHERE work_order_id = $1", "wo-3")

    rebuilt = csdp(settings, "projections", "rebuild", "work_orders_current")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt work_orders_current from" in rebuilt.output
    assert fetch_value(settings, "SELECT priority FROM work_orders_current WHERE work_order_id = $1", "wo-2") == "P1"
    verified = csdp(settings, "projections", "verify")
    assert verified.exit_code == 1
    assert "work_orders_current: equal" in verified.output
    assert "work_order_timeline: 3 differing rows" in verified.output
    assert "work_order_timeline [wo-3, 1] (row): live (no row), rebuilt present" in verified.output


def test_verify_lists_at_most_max_differences(live_server):
    send_traffic(live_server)
    execute(live_server.settings, "DELETE FROM work_order_timeline")

    result = csdp(live_server.settings, "projections", "verify", "work_order_timeline", "--max-differences", "2")

    assert result.exit_code == 1
    assert result.output.count("work_order_timeline [") == 2
    assert "(only the first 2 differences are listed)" in result.output
    assert "work_orders_current" not in result.output


def test_progress_output_shows_decisions_and_events(live_server):
    send_traffic(live_server)

    result = csdp(live_server.settings, "projections", "rebuild", "--batch-size", "4")

    assert result.exit_code == 0, result.output
    assert "14/14 decisions, 11 events" in result.stderr


def test_empty_store_verifies_and_rebuilds(live_server):
    assert csdp(live_server.settings, "projections", "rebuild").exit_code == 0

    result = csdp(live_server.settings, "projections", "verify")

    assert result.exit_code == 0, result.output
    assert "work_orders_current: equal, 0 rows" in result.output


@pytest.mark.parametrize("command", ["rebuild", "verify"])
def test_unknown_projection_exits_2(settings, command):
    result = csdp(settings, "projections", command, "work_orders_current", "orders")

    assert result.exit_code == 2
    assert "unknown projection 'orders'" in result.output
    assert "valid names: work_orders_current, work_order_timeline, event_audience" in result.output


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_missing_sqlite_file_is_a_message(settings):
    result = csdp(settings, "projections", "verify")

    assert result.exit_code == 1
    assert f"no SQLite database at {settings.sqlite_path}" in result.output
    assert "Traceback" not in result.output
    assert not settings.sqlite_path.exists()


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_outdated_sqlite_schema_is_a_message(settings):
    settings.sqlite_path.parent.mkdir(parents=True)
    sqlite3.connect(settings.sqlite_path).close()

    result = csdp(settings, "projections", "rebuild")

    assert result.exit_code == 1
    assert "has schema version 0" in result.output
    assert "run `csdp migrate`" in result.output


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_unreachable_postgres_is_a_message(settings, tmp_path):
    unreachable = Settings(var_dir=tmp_path / "var", database_url="postgresql://postgres@127.0.0.1:1/csdp")

    result = csdp(unreachable, "projections", "verify")

    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/csdp" in result.output
    assert "Traceback" not in result.output
