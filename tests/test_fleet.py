"""The fleet simulator end to end, and its invariant checks on broken input."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid

from shared_schema import RecordedEvent
from simulators.invariants import _duplicate_problems


def run_fleet(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulators.fleet", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_fleet_small_run_holds_invariants():
    result = run_fleet("--seed", "3", "--engineers", "4", "--orders", "20", "--lost-response-rate", "0.2")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["invariants"]
    assert all(summary["invariants"].values()), summary["violations"]
    assert summary["lost_responses"] > 0
    assert summary["decisions"]["ACCEPTED:applied"] > 20 * 5


def test_fleet_same_seed_same_decisions():
    first = json.loads(run_fleet("--seed", "5", "--engineers", "3", "--orders", "12").stdout)
    second = json.loads(run_fleet("--seed", "5", "--engineers", "3", "--orders", "12").stdout)
    assert first["decisions"] == second["decisions"]
    assert first["ticks"] == second["ticks"]


def test_fleet_rejects_bad_option():
    result = run_fleet("--engineers", "0")
    assert result.returncode == 2
    assert "expected a whole number of 1 or more, got '0'" in result.stderr


def _event(work_order_id: str, version: int, position: int, client_event_id: uuid.UUID | None = None) -> RecordedEvent:
    now = dt.datetime(2026, 1, 5, 8, tzinfo=dt.timezone.utc)
    return RecordedEvent(
        event_id=uuid.uuid4(),
        global_position=position,
        stream_version=version,
        client_event_id=client_event_id or uuid.uuid4(),
        work_order_id=work_order_id,
        type="note_added",
        payload={"text": "x"},
        occurred_at=now,
        effective_time=now,
        recorded_at=now,
        base_version=version - 1,
        device_id="tablet-1",
        actor="e-1",
        actor_role="engineer",
    )


def test_duplicate_check_flags_repeated_event():
    repeated = uuid.uuid4()
    log = [_event("wo-1", 1, 1, repeated), _event("wo-1", 2, 2, repeated)]
    problems = _duplicate_problems(log)
    assert any("in the log 2 times" in problem for problem in problems)


def test_duplicate_check_flags_version_gap():
    log = [_event("wo-1", 1, 1), _event("wo-1", 3, 2)]
    problems = _duplicate_problems(log)
    assert problems == ["stream wo-1 has versions [1, 3]..., expected 1..2"]


def test_duplicate_check_accepts_clean_log():
    log = [_event("wo-1", 1, 1), _event("wo-2", 1, 2), _event("wo-1", 2, 3)]
    assert _duplicate_problems(log) == []


def test_fleet_on_postgres_matches_sqlite(postgres_database):
    arguments = ("--seed", "7", "--engineers", "3", "--orders", "12")
    on_postgres = run_fleet(*arguments, "--database-url", postgres_database)
    on_sqlite = run_fleet(*arguments)

    assert on_postgres.returncode == 0, on_postgres.stderr[-2000:]
    postgres_summary = json.loads(on_postgres.stdout)
    assert all(postgres_summary["invariants"].values()), postgres_summary["violations"]
    assert postgres_summary["decisions"] == json.loads(on_sqlite.stdout)["decisions"]


def test_fleet_rejects_non_postgres_url():
    result = run_fleet("--database-url", "mysql://127.0.0.1/fleet")
    assert result.returncode != 0
    assert "expected postgresql://USER@HOST:PORT/DATABASE" in result.stderr


def test_fleet_server_url_needs_var_dir():
    result = run_fleet("--server-url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "--server-url needs --var-dir" in result.stderr


def test_fleet_rejects_foreign_server_key(tmp_path, live_server):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dev-jwt-key").write_text("another key")

    result = run_fleet("--server-url", live_server.base_url, "--var-dir", str(tmp_path / "other"))

    assert result.returncode == 1
    assert "returned HTTP 401 to the simulator's token" in result.stderr


def test_fleet_unreachable_database_message(tmp_path):
    url = "postgresql://postgres@127.0.0.1:9/nowhere"
    result = run_fleet("--database-url", url)

    assert result.returncode == 1
    assert f"--database-url '{url}' is not usable" in result.stderr
    assert "Traceback" not in result.stderr
