"""Database passwords stay hidden in every message, log record, response and command output that shows a URL."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess

import asyncpg
import httpx
import pytest
from click.testing import CliRunner
from conftest import free_port, start_server, stop_server
from test_cli import CSDP, _wait_for_health, csdp_env

from server.cli import main
from server.config import Settings
from server.store.postgres import PostgresStore
from simulators.target import RunSetupError, create_schema

# Nothing listens on port 1 of the loopback address, so each connection is refused at once.
REFUSED_URL = "postgresql://app:hunter2@127.0.0.1:1/csdp?password=hunter3&sslpassword=hunter4"
SECRETS = ("hunter2", "hunter3", "hunter4")


@pytest.fixture
def store_kind() -> str:
    return "postgres"


def assert_hidden(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def with_passwords(settings: Settings) -> Settings:
    """The same database, its URL carrying passwords that trust authentication ignores."""
    url = settings.database_url.replace("postgres@", "postgres:hunter2@", 1)
    return dataclasses.replace(settings, database_url=f"{url}&password=hunter3&sslpassword=hunter4")


async def execute(url: str, sql: str) -> None:
    schema = url.partition("search_path=")[2]
    connection = await asyncpg.connect(url.partition("?")[0], server_settings={"search_path": schema})
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def test_store_description_hides_query_passwords():
    shown = PostgresStore(REFUSED_URL).description

    assert shown == "postgresql://app:***@127.0.0.1:1/csdp?password=***&sslpassword=***"


def test_ready_details_hide_passwords(settings):
    server, thread, base_url = start_server(with_passwords(settings))
    try:
        # A schema version ahead of the server fails a check, so /ready answers with each check's detail.
        asyncio.run(execute(settings.database_url, "INSERT INTO schema_migrations (version, applied_at) VALUES (999, now())"))
        body = httpx.get(f"{base_url}/ready", timeout=10).text
    finally:
        stop_server(server, thread)

    assert "password=***" in body
    assert_hidden(body)


def test_start_record_hides_passwords(settings, tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.stdout.log"
    environment = csdp_env(tmp_path / "var", CSDP_DATABASE_URL=with_passwords(settings).database_url, CSDP_SLA_CLOCK_SECONDS="0")
    with log_path.open("w") as log, (tmp_path / "serve.stderr.log").open("w") as errors:
        process = subprocess.Popen([str(CSDP), "serve", "--port", str(port)], env=environment, stdout=log, stderr=errors)
    try:
        _wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    output = log_path.read_text() + (tmp_path / "serve.stderr.log").read_text()

    assert '"event": "server_started"' in output
    assert "password=***" in output
    assert_hidden(output)


def test_migrate_output_hides_passwords(settings, tmp_path):
    env = {"CSDP_VAR_DIR": str(tmp_path / "var"), "CSDP_DATABASE_URL": with_passwords(settings).database_url}

    result = CliRunner().invoke(main, ["migrate"], env=env)

    assert result.exit_code == 0, result.output
    assert "password=***" in result.output
    assert_hidden(result.output)


@pytest.mark.parametrize("command", [["migrate"], ["backup", "out.csdp-backup"], ["restore", "missing.csdp-backup"], ["serve", "--port", "0"]])
def test_connection_errors_hide_passwords(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if command[0] == "restore":
        sqlite_env = {"CSDP_VAR_DIR": str(tmp_path / "var")}
        assert CliRunner().invoke(main, ["migrate"], env=sqlite_env).exit_code == 0
        result = CliRunner().invoke(main, ["backup", "ok.csdp-backup"], env=sqlite_env)
        assert result.exit_code == 0, result.output
        command = ["restore", "ok.csdp-backup"]
    env = {"CSDP_VAR_DIR": str(tmp_path / "var"), "CSDP_DATABASE_URL": REFUSED_URL}

    result = CliRunner().invoke(main, command, env=env)

    assert result.exit_code != 0
    assert "127.0.0.1:1" in result.output
    assert_hidden(result.output)


def test_config_show_hides_keyword_value_password(tmp_path):
    env = {"CSDP_VAR_DIR": str(tmp_path / "var"), "CSDP_DATABASE_URL": "host=127.0.0.1 password=hunter2 dbname=x"}

    result = CliRunner().invoke(main, ["config", "show"], env=env)

    assert result.exit_code != 0
    assert "password=***" in result.output
    assert_hidden(result.output)


def test_simulator_database_url_errors_hide_passwords():
    with pytest.raises(RunSetupError) as refused:
        create_schema(REFUSED_URL, "s_redaction")
    with pytest.raises(RunSetupError) as invalid:
        create_schema("host=127.0.0.1 password=hunter2", "s_redaction")

    assert "password=***" in str(refused.value)
    assert_hidden(str(refused.value))
    assert_hidden(str(invalid.value))
