"""One correlation id followed from the request through a real server's JSON log records into the stored events."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
import structlog
from api_helpers import DEVICE, created, event
from conftest import free_port
from test_cli import CSDP, _wait_for_health, csdp_env

from server.config import Settings
from server.logging import configure_logging
from server.security import mint_dev_token
from shared_schema import Role
from simulators import fleet


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


def records(log_text: str) -> list[dict]:  # type: ignore[type-arg]
    """Parse the JSON log lines of the server's stdout; every line must be one JSON object."""
    return [json.loads(line) for line in log_text.splitlines() if line.strip()]


def run_server_and_post(
    tmp_path: Path,
    batches: list[tuple[dict[str, str], dict]],  # type: ignore[type-arg]
    before_posting: Callable[[], None] = lambda: None,
    **environment: str,
) -> tuple[list[httpx.Response], str, str]:
    """Start `csdp serve`, post each (headers, body) as a dispatcher, stop it; return the responses, log and token."""
    var_dir = tmp_path / "var"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # structlog prints the JSON records to stdout and uvicorn logs its plain lines to stderr.
    # The two go to separate files, so a write to one stream cannot land inside a line of the other.
    log_path = tmp_path / "serve.stdout.log"
    with log_path.open("w") as log, (tmp_path / "serve.stderr.log").open("w") as errors:
        process = subprocess.Popen(
            [str(CSDP), "serve", "--port", str(port)],
            env=csdp_env(var_dir, CSDP_SLA_CLOCK_SECONDS="0", **environment),
            stdout=log,
            stderr=errors,
        )
    token = mint_dev_token(Settings(var_dir=var_dir), subject="d-7", role=Role.DISPATCHER)
    responses = []
    try:
        _wait_for_health(base_url, process)
        before_posting()
        for headers, body in batches:
            responses.append(
                httpx.post(
                    f"{base_url}/v1/events",
                    json=body,
                    headers={"Authorization": f"Bearer {token}", **headers},
                    timeout=30,
                )
            )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    return responses, log_path.read_text(), token


def stored_correlation_ids(database: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Return {work order id: correlation id} of the stored events and of the stored decisions."""
    with sqlite3.connect(database) as connection:
        events = {
            row[0]: json.loads(row[1])["correlation_id"]
            for row in connection.execute("SELECT work_order_id, event FROM events")
        }
        decisions = dict(connection.execute("SELECT work_order_id, correlation_id FROM decisions"))
    return events, decisions


def test_correlation_id_followed_through_logs_and_events(tmp_path):
    correlation_id = "tablet-7-sync-0042"
    body = {"events": [created("wo-71"), event("wo-71", "assigned", 1, {"engineer_id": "e-1"}), event("wo-71", "closed", 2)]}

    responses, log_text, token = run_server_and_post(tmp_path, [({"X-Correlation-ID": correlation_id}, body)])

    response = responses[0]
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == correlation_id
    statuses = [decision["status"] for decision in response.json()["decisions"]]
    assert statuses == ["ACCEPTED", "ACCEPTED", "REJECTED"]

    log = records(log_text)
    request = [r for r in log if r.get("event") == "request" and r.get("correlation_id") == correlation_id]
    assert len(request) == 1
    assert request[0]["method"] == "POST"
    assert request[0]["path"] == "/v1/events"
    assert request[0]["status"] == 200
    assert request[0]["subject"] == "d-7"
    assert request[0]["latency_ms"] >= 0
    batch = [r for r in log if r.get("event") == "batch_decided" and r.get("correlation_id") == correlation_id]
    assert len(batch) == 1
    assert batch[0]["events"] == 3
    assert batch[0]["decisions"] == {"ACCEPTED:applied": 2, "REJECTED:invalid_transition": 1}
    assert batch[0]["subject"] == "d-7"
    assert batch[0]["device_ids"] == [DEVICE]
    assert token not in log_text
    assert token.split(".")[2] not in log_text

    events, decisions = stored_correlation_ids(tmp_path / "var" / "csdp.sqlite3")
    assert events == {"wo-71": correlation_id}
    assert decisions == {"wo-71": correlation_id}


def test_generated_correlation_id_echoed_and_stored(tmp_path):
    body = {"events": [created("wo-72")]}

    responses, log_text, _ = run_server_and_post(tmp_path, [({}, body)])

    generated = responses[0].headers["x-correlation-id"]
    assert len(generated) == 36
    log = records(log_text)
    assert [r["event"] for r in log if r.get("correlation_id") == generated] == ["batch_decided", "request"]
    events, decisions = stored_correlation_ids(tmp_path / "var" / "csdp.sqlite3")
    assert events == {"wo-72": generated}
    assert decisions == {"wo-72": generated}


def test_bad_correlation_id_logged_and_rejected(tmp_path):
    responses, log_text, _ = run_server_and_post(tmp_path, [({"X-Correlation-ID": "has spaces in it"}, {"events": [created("wo-73")]})])

    response = responses[0]
    assert response.status_code == 400
    assert response.json()["field"] == "X-Correlation-ID"
    replacement = response.headers["x-correlation-id"]
    rejected = [r for r in records(log_text) if r.get("event") == "correlation_id_rejected"]
    assert [r["correlation_id"] for r in rejected] == [replacement]
    events, _ = stored_correlation_ids(tmp_path / "var" / "csdp.sqlite3")
    assert events == {}




def test_each_bad_correlation_id_gets_request_record(tmp_path):
    bad_ids = ["tab\tinside", "x" * 300, "ger\u00e4t-7".encode()]
    batches = [({"X-Correlation-ID": bad}, {"events": [created(f"wo-{n}")]}) for n, bad in enumerate(bad_ids)]

    responses, log_text, _ = run_server_and_post(tmp_path, batches)  # type: ignore[arg-type]

    assert [response.status_code for response in responses] == [400, 400, 400]
    replacements = [response.headers["x-correlation-id"] for response in responses]
    logged = [r for r in records(log_text) if r.get("event") == "request" and r.get("correlation_id") in replacements]
    assert [r["correlation_id"] for r in logged] == replacements
    assert all(r["status"] == 400 for r in logged)
    assert all(r["method"] == "POST" and r["path"] == "/v1/events" for r in logged)


def test_store_error_logged_with_ids(tmp_path, postgres_database):
    schema = f"logs_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_database}?search_path={schema}"

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(postgres_database)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    migrated = subprocess.run(
        [str(CSDP), "migrate"], env=csdp_env(tmp_path / "var", CSDP_DATABASE_URL=url), capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    try:
        # The table disappears under the running server, so the append fails inside PostgreSQL.
        responses, log_text, _ = run_server_and_post(
            tmp_path,
            [({"X-Correlation-ID": "tablet-3-sync-9"}, {"events": [created("wo-74")]})],
            before_posting=lambda: asyncio.run(run(f"ALTER TABLE {schema}.events RENAME TO events_moved")),
            CSDP_DATABASE_URL=url,
        )
    finally:
        asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))

    assert responses[0].status_code == 500
    assert responses[0].json()["correlation_id"] == "tablet-3-sync-9"
    errors = [r for r in records(log_text) if r.get("event") == "store_error"]
    assert len(errors) == 1
    assert errors[0]["correlation_id"] == "tablet-3-sync-9"
    assert errors[0]["subject"] == "d-7"
    assert errors[0]["method"] == "POST"
    assert errors[0]["path"] == "/v1/events"
    assert "events" in errors[0]["error"]


def test_cached_logger_follows_swapped_streams(monkeypatch):
    """A logger cached while one stream was sys.stderr keeps writing after that stream is closed and replaced.

    The simulators configure logging when their main() runs, and tests run
    main() while sys.stderr is a capture that closes afterwards.
    """
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    fleet.configure_logging()
    logger = structlog.get_logger("stream-check")
    logger.warning("first_line")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)

    logger.warning("second_line")

    assert "second_line" in second.getvalue()


def test_server_logger_follows_sys_stdout(monkeypatch):
    configure_logging("INFO")
    first = io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    logger = structlog.get_logger("stdout-check")
    logger.warning("first_line")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stdout", second)

    logger.warning("second_line")

    assert json.loads(second.getvalue())["event"] == "second_line"
