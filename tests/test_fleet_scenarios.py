"""Fleet scenarios: file validation, one short run per fault on each store, a broken server, replay and report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.kpi_check import compare_figures
from simulators.scenario import PRESET_FOLDER, ScenarioError, load_preset, load_scenario, preset_names

TESTS = Path(__file__).parent
ALL_TRUE_INVARIANTS = {
    "every_recorded_event_decided",
    "one_decision_per_event_on_replay",
    "no_duplicate_event",
    "accepted_events_in_log",
    "projection_equals_log_fold",
    "tablets_converged",
    "projections_equal_rebuild",
    "kpi_equal_independent_computation",
}


def run_fleet(*arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulators.fleet", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(environment or {})},
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.stdout, result.stderr[-3000:]
    return json.loads(result.stdout)


# -- scenario files -----------------------------------------------------------


def test_every_preset_loads():
    names = preset_names()
    assert {"smoke", "each-fault", "soak", "lost-responses", "connection-resets", "burst-503"} <= set(names)
    assert {"server-kill", "postgres-restart", "default"} <= set(names)
    for name in names:
        assert load_preset(name).name == name


def test_unknown_preset_lists_presets():
    with pytest.raises(ScenarioError) as raised:
        load_preset("nope")
    assert "preset 'nope' not found; presets: " in str(raised.value)
    assert "smoke" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('name = "x"\n[fleet]\nengineers = 0\n', "Expected `int` >= 1 - at `$.fleet.engineers`", id="zero engineers"),
        pytest.param('name = "x"\n[fleet]\nengineerz = 3\n', "unknown field `engineerz` - at `$.fleet`", id="misspelt key"),
        pytest.param(
            'name = "x"\n[faults]\nlost_response_rate = 1.5\n',
            "Expected `float` <= 1.0 - at `$.faults.lost_response_rate`",
            id="rate above one",
        ),
        pytest.param(
            'name = "x"\n[faults]\nserver_kill_ticks = [0]\n',
            "Expected `int` >= 1 - at `$.faults.server_kill_ticks[0]`",
            id="kill at tick zero",
        ),
        pytest.param('name = "x"\nstore = "mysql"\n', "at `$.store`", id="unknown store"),
        pytest.param("[fleet]\nengineers = 3\n", "missing required field `name`", id="no name"),
        pytest.param('name = "x"\nfleet = 3\n', "Expected `object`, got `int` - at `$.fleet`", id="table is number"),
        pytest.param(
            'name = "x"\n[faults]\npostgres_restart_ticks = [3]\n',
            'postgres_restart_ticks needs store = "postgres-private"',
            id="restart without private cluster",
        ),
        pytest.param('name = "x"\n[fleet\n', "is not valid TOML", id="broken toml"),
    ],
)
def test_invalid_scenario_names_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)

    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_scenario_json_and_bad_files(tmp_path):
    good = tmp_path / "fleet.json"
    good.write_text(json.dumps({"name": "json-fleet", "fleet": {"engineers": 2}, "clock": {"max_skew_minutes": 3}}))
    assert load_scenario(good).fleet.engineers == 2

    for name, content, message in [
        ("fleet.yaml", b"name: x", "unknown suffix; use .toml or .json"),
        ("list.json", b"[1]", "must hold a table (object) at the top, got list"),
        ("broken.json", b"{", "is not valid JSON"),
        ("latin.toml", b'name = "\xff"', "cannot be read"),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ScenarioError) as raised:
            load_scenario(path)
        assert message in str(raised.value), name

    with pytest.raises(ScenarioError) as raised:
        load_scenario(tmp_path / "missing.toml")
    assert "cannot be read" in str(raised.value)


def test_cli_bad_scenario_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[connectivity]\noffline_probability = -0.1\n')

    result = run_fleet("--scenario", str(path))

    assert result.returncode == 2
    assert "$.connectivity.offline_probability" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_replay_file(tmp_path):
    path = tmp_path / "replay.json"
    path.write_text('{"seed": 3}')

    result = run_fleet("--replay", str(path))

    assert result.returncode == 2
    assert "has no scenario object at `$.scenario`" in result.stderr


def test_cli_shared_postgres_cannot_restart(tmp_path):
    result = run_fleet("--preset", "postgres-restart", "--store", "postgres")

    assert result.returncode == 2
    assert 'needs store = "postgres-private"' in result.stderr


def test_cli_postgres_store_needs_url():
    environment = {key: value for key, value in os.environ.items() if key != "CSDP_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "simulators.fleet", "--json", "--preset", "smoke", "--store", "postgres"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )

    assert result.returncode == 1
    assert "store postgres needs --database-url or CSDP_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_postgres_binaries(tmp_path):
    result = run_fleet(
        "--preset", "postgres-restart", environment={"CSDP_SIM_PG_BIN": str(tmp_path / "no-bin"), "TMPDIR": str(tmp_path)}
    )

    assert result.returncode == 1
    assert "the private PostgreSQL cluster did not start: " in result.stderr
    assert "initdb" in result.stderr
    assert "Traceback" not in result.stderr


def test_kpi_comparison_flags_difference():
    served = {"restored": 3, "mttr_seconds": 60.0, "utilisation": None}
    expected = {"restored": 3, "mttr_seconds": 61.0, "utilisation": None}

    problems = compare_figures("group_by=engineer key=e-001", served, expected)

    assert problems == ["group_by=engineer key=e-001: mttr_seconds is 60.0 from /v1/kpi, 61.0 from the raw log"]
    assert compare_figures("same", expected, expected) == []


# -- one short run per fault and store ------------------------------------------

NETWORK_AND_SERVER_FAULTS = [
    ("lost-responses", "lost_responses"),
    ("connection-resets", "connection_resets"),
    ("burst-503", "injected_503"),
    ("server-kill", "server_kills"),
]


def check_fault_run(result: subprocess.CompletedProcess[str], counter: str) -> dict:
    summary = summary_of(result)
    assert set(summary["invariants"]) == ALL_TRUE_INVARIANTS
    assert summary["violations"] == []
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary[counter] > 0
    assert summary["decisions"]["ACCEPTED:applied"] > 50
    return summary


@pytest.mark.fleet
@pytest.mark.parametrize(("preset", "counter"), NETWORK_AND_SERVER_FAULTS)
def test_fault_run_sqlite(preset, counter):
    summary = check_fault_run(run_fleet("--preset", preset, "--store", "sqlite"), counter)
    assert summary["store"] == "sqlite"


@pytest.mark.fleet
@pytest.mark.parametrize(("preset", "counter"), NETWORK_AND_SERVER_FAULTS)
def test_fault_run_postgres(postgres_database, preset, counter):
    result = run_fleet("--preset", preset, "--store", "postgres", "--database-url", postgres_database)
    summary = check_fault_run(result, counter)
    assert summary["store"] == "postgres"


@pytest.mark.fleet
def test_fault_run_postgres_restart():
    summary = check_fault_run(run_fleet("--preset", "postgres-restart"), "postgres_restarts")
    assert summary["store"] == "postgres-private"
    assert summary["postgres_restarts"] == 3


@pytest.mark.fleet
def test_fault_run_same_seed_same_decisions():
    first = summary_of(run_fleet("--preset", "smoke", "--seed", "4"))
    second = summary_of(run_fleet("--preset", "smoke", "--seed", "4"))
    other = summary_of(run_fleet("--preset", "smoke", "--seed", "5"))

    assert first["decisions"] == second["decisions"]
    assert first["ticks"] == second["ticks"]
    assert first["injected_503"] == second["injected_503"]
    assert (first["decisions"], first["ticks"]) != (other["decisions"], other["ticks"])


# -- a broken server, replay and report -----------------------------------------


@pytest.mark.fleet
def test_broken_idempotency_exit_1(tmp_path):
    """With idempotency patched off in the server, the run fails and names the invariants it broke."""
    # A failed run keeps its files. TMPDIR puts them under tmp_path, which pytest cleans up.
    broken = {"CSDP_SIM_SERVER_PLUGIN": "fleet_forget_decisions", "PYTHONPATH": str(TESTS), "TMPDIR": str(tmp_path)}
    replay_file = tmp_path / "replay.json"
    arguments = ("--max-ticks", "40", "--replay-out", str(replay_file))

    result = run_fleet("--preset", "lost-responses", *arguments, environment=broken)

    summary = summary_of(result)
    assert result.returncode == 1
    assert summary["invariants"]["one_decision_per_event_on_replay"] is False
    assert summary["invariants"]["every_recorded_event_decided"] is False
    assert "invariants violated: every_recorded_event_decided, one_decision_per_event_on_replay" in result.stderr
    assert any(v.startswith("one_decision_per_event_on_replay: ") for v in summary["violations"])

    replay = json.loads(replay_file.read_text())
    assert replay["violated"] == ["every_recorded_event_decided", "one_decision_per_event_on_replay"]
    assert replay["scenario"]["seed"] == 11
    assert replay["scenario"]["fleet"]["max_ticks"] == 40

    again = run_fleet("--replay", str(replay_file), "--replay-out", str(tmp_path / "again.json"), environment=broken)
    assert again.returncode == 1
    assert summary_of(again)["invariants"] == summary["invariants"]


@pytest.mark.fleet
def test_healthy_replay_passes(tmp_path):
    """A replay file runs its scenario as written, so the same file on a healthy server passes."""
    replay_file = tmp_path / "replay.json"
    scenario = {"name": "smoke-replay", "seed": 9, "fleet": {"engineers": 2, "orders_per_day": 6}}
    replay_file.write_text(json.dumps({"scenario": scenario}))

    summary = summary_of(run_fleet("--replay", str(replay_file)))

    assert summary["ok"] is True
    assert summary["scenario"] == "smoke-replay"
    assert summary["seed"] == 9
    assert "replay_file" not in summary


@pytest.mark.fleet
def test_report_has_plots(tmp_path):
    result = run_fleet("--preset", "server-kill", "--report", str(tmp_path / "report"))

    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "report"
    for plot in ("decisions-by-reason.png", "queue-depth.png", "time-to-decision.png"):
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    report = (folder / "report.md").read_text()
    assert "# Fleet run: server-kill, seed 14" in report
    assert "| projections_equal_rebuild | yes |" in report
    assert "| server killed with SIGKILL | 3 |" in report
    assert "![Queue depth per device](queue-depth.png)" in report


def test_preset_folder_has_only_scenarios():
    assert sorted(path.suffix for path in PRESET_FOLDER.iterdir() if path.is_file()) == [".toml"] * len(preset_names())


@pytest.mark.fleet
def test_external_server_run(live_server, tmp_path):
    """A run against a server it did not start checks that server's store, on SQLite and on PostgreSQL."""
    settings = live_server.settings
    environment = {"CSDP_DATABASE_URL": settings.database_url or "", "TMPDIR": str(tmp_path)}
    arguments = ("--preset", "smoke", "--server-url", live_server.base_url, "--var-dir", str(settings.var_dir))

    result = run_fleet(*arguments, environment=environment)

    summary = summary_of(result)
    assert summary["store"] == "external server"
    assert summary["violations"] == []
    assert summary["invariants"]["projections_equal_rebuild"] is True
    # The server is fresh, so every order is the run's own and the KPI figures are compared.
    assert summary["invariants"]["kpi_equal_independent_computation"] is True
    assert summary["not_checked"] == {}
    assert result.returncode == 0, result.stderr[-3000:]
