"""The `csdp` command: tokens, rejected options and a demo server started as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from api_helpers import Clients, assigned, created, event, post_batch, work_order
from click.testing import CliRunner
from conftest import LiveServer, free_port, start_server, stop_server

from server.security import mint_dev_token
from server.cli import main
from server.config import Settings
from server.store.migrations import latest_version
from shared_schema import Role


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only: what it tests does not depend on the store."""
    return "sqlite"


CSDP = Path(sys.executable).parent / "csdp"


def csdp_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """Build the environment for a `csdp` process, without inherited CSDP_* settings and with this var dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CSDP_")}
    env["CSDP_VAR_DIR"] = str(var_dir)
    env.update(extra)
    return env


def run_csdp(var_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CSDP), *args], env=csdp_env(var_dir, **extra_env), capture_output=True, text=True, timeout=60
    )


def test_token_accepted_by_server(tmp_path):
    var_dir = tmp_path / "var"

    result = run_csdp(var_dir, "token", "--role", "engineer", "--subject", "e-17")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "e-17"
    assert claims["roles"] == ["engineer"]
    assert claims["engineer_id"] == "e-17"
    assert claims["exp"] - claims["iat"] == 12 * 3600

    settings = Settings(var_dir=var_dir)
    server, thread, base_url = start_server(settings)
    clients = Clients(LiveServer(base_url=base_url, settings=settings))
    try:
        dispatcher = clients("dispatcher", "d-1")
        post_batch(dispatcher, [created("wo-1"), assigned("wo-1", "e-17")])
        engineer = clients.anonymous(headers={"Authorization": f"Bearer {token}"})
        listed = engineer.get("/v1/work-orders")
        accepted = post_batch(engineer, [event("wo-1", "accepted", 2)])
        actor = dispatcher.get("/v1/sync/changes").json()["events"][-1]["actor"]
        state = work_order(dispatcher, "wo-1")
    finally:
        clients.close()
        stop_server(server, thread)

    assert listed.status_code == 200
    assert [item["work_order_id"] for item in listed.json()["items"]] == ["wo-1"]
    assert accepted[0]["status"] == "ACCEPTED"
    assert actor == "e-17"
    assert state["status"] == "accepted"


def test_token_ttl_option_sets_expiry(tmp_path):
    result = CliRunner().invoke(
        main, ["token", "--role", "dispatcher", "--subject", "d-1", "--ttl-hours", "0.5"], env=csdp_env(tmp_path)
    )

    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert result.exit_code == 0
    assert claims["exp"] - claims["iat"] == 1800
    assert "engineer_id" not in claims


def test_token_invalid_role_rejected(tmp_path):
    result = CliRunner().invoke(main, ["token", "--role", "superuser", "--subject", "x"], env=csdp_env(tmp_path))

    assert result.exit_code == 2
    assert "Invalid value for '--role'" in result.output
    assert "'superuser' is not one of 'engineer', 'dispatcher', 'manager', 'admin'" in result.output
    assert not (tmp_path / "dev-jwt-key").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "--role", "engineer"], "Missing option '--subject'"),
        (["token", "--subject", "e-17"], "Missing option '--role'"),
        (["token", "--role", "engineer", "--subject", "e-17", "--ttl-hours", "0"], "Invalid value for '--ttl-hours'"),
        (["token", "--role", "engineer", "--subject", "e-17", "--ttl-hours", "soon"], "'soon' is not a valid float"),
    ],
    ids=["subject missing", "role missing", "ttl zero", "ttl text"],
)
def test_token_bad_options_rejected(tmp_path, args, message):
    result = CliRunner().invoke(main, args, env=csdp_env(tmp_path))

    assert result.exit_code == 2
    assert message in result.output


def test_transitions_prints_table():
    result = CliRunner().invoke(main, ["transitions"])

    rows = json.loads(result.output)
    assert result.exit_code == 0
    assert {"from_state": None, "event_type": "created", "to_state": "new"}.items() <= rows[0].items()
    assert len({(row["from_state"], row["event_type"]) for row in rows}) == len(rows)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_serve_public_host_rejected(tmp_path, host):
    result = run_csdp(tmp_path / "var", "serve", "--host", host, "--port", str(free_port()))

    assert result.returncode == 1
    assert f"refusing to accept development tokens on the non-loopback address {host}" in result.stderr
    assert "--host 127.0.0.1" in result.stderr
    assert "--allow-dev-auth-on-network" in result.stderr
    assert "CSDP_JWKS_URL" in result.stderr
    assert not (tmp_path / "var" / "csdp.sqlite3").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CSDP_MAX_BATCH_EVENTS", "many", "CSDP_MAX_BATCH_EVENTS='many' is invalid: expected a whole number"),
        ("CSDP_MAX_BATCH_EVENTS", "0", "CSDP_MAX_BATCH_EVENTS='0' is invalid: expected a whole number greater than 0"),
        ("CSDP_DEV_AUTH", "maybe", "CSDP_DEV_AUTH='maybe' is invalid: expected true or false"),
        ("CSDP_DATABASE_URL", "mysql://db/csdp", "CSDP_DATABASE_URL='mysql://db/csdp' is invalid: expected sqlite:///PATH"),
        ("CSDP_DATABASE_URL", "postgresql://", "CSDP_DATABASE_URL='postgresql://' is invalid: it names no database"),
        (
            "CSDP_DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432",
            "CSDP_DATABASE_URL='postgresql://postgres@127.0.0.1:5432' is invalid: it names no database",
        ),
        ("CSDP_JWT_ALGORITHMS", "HS256", "CSDP_JWT_ALGORITHMS='HS256' is invalid: expected one or more of RS256"),
        ("CSDP_JWKS_URL", "http://127.0.0.1:9/certs", "CSDP_JWT_ISSUER is not set"),
        ("CSDP_JWKS_URL", "ftp://idp/certs", "CSDP_JWKS_URL='ftp://idp/certs' is invalid: expected https://HOST[:PORT]/PATH"),
        ("CSDP_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem", "CSDP_JWT_PUBLIC_KEY_FILE='/nonexistent/key.pem' is not a readable file"),
        ("CSDP_DEV_AUTH", "false", "CSDP_DEV_AUTH is false and no identity provider is configured"),
        ("CSDP_JWT_LEEWAY_SECONDS", "soon", "CSDP_JWT_LEEWAY_SECONDS='soon' is invalid: expected a number of seconds"),
        ("CSDP_RATE_LIMIT_PER_MINUTE", "-5", "CSDP_RATE_LIMIT_PER_MINUTE='-5' is invalid: expected a whole number, 0 or more"),
        ("CSDP_ROLE_CLAIM", "realm_access..roles", "CSDP_ROLE_CLAIM='realm_access..roles' is invalid"),
    ],
    ids=[
        "batch text",
        "batch zero",
        "dev auth",
        "database url",
        "no database",
        "no database path",
        "hs256 for the provider",
        "jwks without issuer",
        "jwks not http",
        "missing key file",
        "no verifier",
        "leeway text",
        "negative rate",
        "empty claim step",
    ],
)
def test_serve_bad_setting_rejected(tmp_path, variable, value, message):
    result = run_csdp(tmp_path / "var", "serve", "--port", str(free_port()), **{variable: value})

    assert result.returncode == 1
    assert f"Error: {message}" in result.stderr


def test_serve_unmigrated_postgres_rejected(tmp_path, postgres_database):
    result = run_csdp(tmp_path / "var", "serve", "--port", str(free_port()), CSDP_DATABASE_URL=postgres_database)

    assert result.returncode == 1
    assert f"has schema version 0, this server needs {latest_version()}" in result.stderr
    assert "run `csdp migrate`" in result.stderr


def test_migrate_then_serve_postgres(tmp_path, postgres_database):
    url = f"{postgres_database}?search_path=public"
    migrated = run_csdp(tmp_path / "var", "migrate", CSDP_DATABASE_URL=url)
    again = run_csdp(tmp_path / "var", "migrate", CSDP_DATABASE_URL=url)

    assert migrated.returncode == 0, migrated.stderr
    assert "the schema is current" in migrated.stdout
    assert again.returncode == 0, again.stderr


def test_serve_unreachable_postgres_rejected(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = run_csdp(tmp_path / "var", "serve", "--port", str(free_port()), CSDP_DATABASE_URL=url)

    assert result.returncode == 1
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1" in result.stderr


def test_serve_demo_lists_orders(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(CSDP), "serve", "--demo", "--port", str(port)],
            env=csdp_env(var_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = _wait_for_health(base_url, process)
        token = mint_dev_token(Settings(var_dir=var_dir), subject="d-1", role=Role.DISPATCHER)
        response = httpx.get(f"{base_url}/v1/work-orders", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    finally:
        process.terminate()
        exit_code = process.wait(timeout=20)

    log = log_path.read_text()
    assert health == {"status": "ok"}
    assert response.status_code == 200
    assert [item["work_order_id"] for item in response.json()["items"]] == ["wo-1001", "wo-1002", "wo-1003"]
    assert [item["engineer_id"] for item in response.json()["items"]] == ["e-17", "e-21", None]
    # uvicorn shuts down cleanly, then raises the SIGTERM it caught again, as a shell expects.
    assert exit_code == -signal.SIGTERM
    assert '"event": "demo_loaded"' in log
    assert '"event": "server_stopped"' in log
    assert (var_dir / "csdp.sqlite3").exists()


def _wait_for_health(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"csdp serve exited early with code {process.returncode}")
        try:
            response = httpx.get(f"{base_url}/health", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        return response.json()
    raise AssertionError(f"csdp serve did not answer /health within {timeout} s")



def test_token_empty_subject_rejected(tmp_path):
    result = run_csdp(tmp_path / "var", "token", "--role", "engineer", "--subject", " ")

    assert result.returncode == 2
    assert "Invalid value for --subject: must not be empty" in result.stderr


def test_token_reports_new_key(tmp_path):
    first = run_csdp(tmp_path / "var", "token", "--role", "engineer", "--subject", "e-1")
    second = run_csdp(tmp_path / "var", "token", "--role", "engineer", "--subject", "e-1")

    assert "Created a new development key at" in first.stderr
    assert second.stderr == ""


@pytest.mark.parametrize("port", ["notaport", "99999"])
def test_serve_malformed_port_rejected(tmp_path, port):
    url = f"postgresql://postgres@127.0.0.1:{port}/csdp"
    result = run_csdp(tmp_path / "var", "serve", "--port", str(free_port()), CSDP_DATABASE_URL=url)

    assert result.returncode == 1
    assert "is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_dev_auth_on_network_with_flag_warns(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    log_path = tmp_path / "serve.log"
    # Listening on every address; the test itself talks to 127.0.0.1 only.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(CSDP), "serve", "--host", "0.0.0.0", "--port", str(port), "--allow-dev-auth-on-network"],
            env=csdp_env(var_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=20)

    warnings = [json.loads(line) for line in log_path.read_text().splitlines() if '"dev_auth_on_network"' in line]
    assert health == {"status": "ok"}
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["host"] == "0.0.0.0"


def test_serve_dev_auth_on_network_flag_from_env(tmp_path):
    """The environment variable opts in as the flag does; without either the start fails (see above)."""
    port = free_port()
    process = subprocess.Popen(
        [str(CSDP), "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=csdp_env(tmp_path / "var", CSDP_ALLOW_DEV_AUTH_ON_NETWORK="true"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = _wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=20)

    assert health == {"status": "ok"}


def test_token_rejected_when_provider_configured(tmp_path):
    result = run_csdp(
        tmp_path / "var",
        "token",
        "--role",
        "admin",
        "--subject",
        "a-1",
        CSDP_JWKS_URL="http://127.0.0.1:9/certs",
        CSDP_JWT_ISSUER="http://127.0.0.1:9/realms/field",
    )

    assert result.returncode == 1
    assert "development tokens are off in this configuration" in result.stderr
    assert result.stdout == ""


def test_dev_auth_warning_survives_error_log_level(tmp_path):
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(CSDP), "serve", "--host", "0.0.0.0", "--port", str(port), "--allow-dev-auth-on-network", "--log-level", "ERROR"],
            env=csdp_env(tmp_path / "var"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=20)

    assert "WARNING: development tokens are accepted on the non-loopback address 0.0.0.0" in log_path.read_text()


def test_token_unwritable_var_dir_rejected(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    result = run_csdp(blocker / "var", "token", "--role", "admin", "--subject", "a-1")

    assert result.returncode == 1
    assert "cannot read or create the development key" in result.stderr
    assert "Created a new development key" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("hours", ["inf", "nan", "1e12", "-1"])
def test_token_bad_lifetime_rejected(tmp_path, hours):
    result = CliRunner().invoke(
        main, ["token", "--role", "admin", "--subject", "a-1", "--ttl-hours", hours], env=csdp_env(tmp_path)
    )

    assert result.exit_code == 2
    assert "--ttl-hours" in result.output
    assert not (tmp_path / "dev-jwt-key").exists()


def test_serve_var_dir_is_a_file_rejected(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    result = run_csdp(blocker, "serve", "--port", str(free_port()))

    assert result.returncode == 1
    assert "cannot open the SQLite file" in result.stderr
    assert "Traceback" not in result.stderr
