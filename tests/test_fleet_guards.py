"""Guards of the fleet simulator's command line: bounds, output paths, unreachable servers, interrupts, --server-url runs.

Each guard fails before the run starts, so these tests take seconds. The two
runs against a demo server and the interrupted runs are marked `fleet`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from interrupt_helpers import interrupt_run

from simulators.fleet import parse_args, read_replay, write_replay
from simulators.run import RunOptions
from simulators.scenario import MAX_ENGINEERS, ScenarioError, decode_scenario, load_preset
from simulators.target import Target

ROOT = Path(__file__).resolve().parent.parent


def run_fleet(*arguments: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulators.fleet", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd or ROOT,
        env=env,
    )


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("fleet", "engineers", 100_000_000, f"Expected `int` <= {MAX_ENGINEERS} - at `$.fleet.engineers`"),
        ("fleet", "orders_per_day", 10**9, "- at `$.fleet.orders_per_day`"),
        ("fleet", "days", 100_000, "- at `$.fleet.days`"),
        ("fleet", "minutes_per_tick", 100_000, "- at `$.fleet.minutes_per_tick`"),
        ("fleet", "max_ticks", 10**9, "- at `$.fleet.max_ticks`"),
        ("connectivity", "max_offline_ticks", 10**9, "- at `$.connectivity.max_offline_ticks`"),
        ("clock", "max_skew_minutes", 10**9, "- at `$.clock.max_skew_minutes`"),
        ("faults", "burst_503_length", 10**9, "- at `$.faults.burst_503_length`"),
        ("faults", "server_down_ticks", 10**9, "- at `$.faults.server_down_ticks`"),
        ("faults", "server_kill_ticks", [10**9], "- at `$.faults.server_kill_ticks[0]`"),
        ("faults", "server_kill_ticks", list(range(1, 2000)), "- at `$.faults.server_kill_ticks`"),
    ],
)
def test_scenario_rejects_number_above_bound(table: str, key: str, value: object, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        decode_scenario({"name": "big", table: {key: value}}, "big.toml")

    assert message in str(raised.value)


def test_scenario_rejects_orders_above_bound_in_total() -> None:
    with pytest.raises(ScenarioError, match=r"orders_per_day \* days must be at most 50000; got 10000 \* 365"):
        decode_scenario({"name": "big", "fleet": {"orders_per_day": 10_000, "days": 365}}, "big.toml")


@pytest.mark.parametrize("name", ["", "sub/dir", "../up", "a b", "x" * 81])
def test_scenario_rejects_name_unfit_for_a_file_name(name: str) -> None:
    with pytest.raises(ScenarioError, match=r"at `\$.name`"):
        decode_scenario({"name": name}, "bad.toml")


def test_every_preset_is_within_the_bounds() -> None:
    for name in ["default", "smoke", "soak", "each-fault"]:
        assert load_preset(name).name == name


def test_fleet_rejects_huge_fleet_before_the_run(tmp_path: Path) -> None:
    scenario = tmp_path / "big.toml"
    scenario.write_text('name = "big"\n[fleet]\nengineers = 100000000\n')

    result = run_fleet("--scenario", str(scenario))

    assert result.returncode == 2
    assert "Expected `int` <= 1000 - at `$.fleet.engineers`" in result.stderr
    assert "fleet_run_started" not in result.stderr


def test_report_path_is_existing_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")

    result = run_fleet("--preset", "smoke", "--report", str(tmp_path / "afile"))

    assert result.returncode == 2
    assert f"--report {tmp_path / 'afile'} is an existing file" in result.stderr
    assert "fleet_run_started" not in result.stderr


def test_replay_folder_missing(tmp_path: Path) -> None:
    result = run_fleet("--preset", "smoke", "--replay-out", str(tmp_path / "missing" / "replay.json"))

    assert result.returncode == 2
    assert f"the replay file's folder {tmp_path / 'missing'} does not exist" in result.stderr
    assert "fleet_run_started" not in result.stderr


def test_fleet_names_unreachable_server_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "dev-jwt-key").write_text("k" * 40)

    result = run_fleet("--preset", "smoke", "--server-url", "http://127.0.0.1:1", "--var-dir", str(tmp_path))

    assert result.returncode == 2
    assert "error: the server at http://127.0.0.1:1 cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr


def test_fleet_help_shows_no_empty_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])

    text = capsys.readouterr().out
    assert "(default: None)" not in text
    assert "(8 in preset default)" in " ".join(text.split())


def test_fleet_help_hides_database_password(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CSDP_DATABASE_URL", "postgresql://fleet:secret-word@127.0.0.1:5432/fleet")

    with pytest.raises(SystemExit):
        parse_args(["--help"])

    assert "secret-word" not in capsys.readouterr().out
    assert parse_args([]).database_url == "postgresql://fleet:secret-word@127.0.0.1:5432/fleet"


def test_store_label_uses_the_option_values(tmp_path: Path) -> None:
    started = Target(base_url="", var_dir=tmp_path, server=object(), store="postgres")  # type: ignore[arg-type]
    assert started.store_label == "postgres"
    assert Target(base_url="http://127.0.0.1:1", var_dir=tmp_path).store_label == "external server"


def test_replay_file_keeps_server_and_run_token(tmp_path: Path) -> None:
    scenario = load_preset("smoke")
    options = RunOptions(scenario=scenario, server_url="http://127.0.0.1:8000", var_dir=tmp_path / "var", run_token="1-abc123")
    path = tmp_path / "replay.json"
    write_replay(path, scenario, {"invariants": {"a": False, "b": None, "c": True}}, options)

    body = json.loads(path.read_text())
    assert body["violated"] == ["a"]
    args = parse_args(["--replay", str(path)])
    assert read_replay(path, args) == scenario
    assert (args.server_url, args.var_dir, args.run_token) == ("http://127.0.0.1:8000", tmp_path / "var", "1-abc123")


def test_replay_file_with_bad_run_token_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"scenario": {"name": "x"}, "run_token": "../x"}))

    with pytest.raises(ScenarioError, match=r"invalid `\$.run_token`"):
        read_replay(path, parse_args(["--replay", str(path)]))


@pytest.mark.fleet
@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_two_runs_on_one_server(demo_server, tmp_path: Path) -> None:
    arguments = ("--seed", "4", "--engineers", "2", "--orders", "4", "--server-url", demo_server.base_url)
    arguments += ("--var-dir", str(demo_server.settings.var_dir))
    folder = tmp_path / "run"
    folder.mkdir()
    summaries = []
    for _ in range(2):
        result = run_fleet(*arguments, cwd=folder)
        assert result.returncode == 0, result.stderr[-2000:]
        summaries.append(json.loads(result.stdout))

    first, second = summaries
    assert first["run_token"] != second["run_token"]
    assert not any(key.endswith("work_order_exists") for key in second["decisions"])
    assert second["decisions"]["ACCEPTED:applied"] >= 4 * 3
    for summary in summaries:
        assert summary["invariants"]["kpi_equal_independent_computation"] is None
        assert "orders this run did not create" in summary["not_checked"]["kpi_equal_independent_computation"]
        assert summary["store"] == "external server"
    assert list(folder.iterdir()) == []


@pytest.mark.fleet
@pytest.mark.parametrize(("signal_number", "status", "words"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupted_run_stops_cleanly(tmp_path: Path, signal_number: int, status: int, words: str) -> None:
    result = interrupt_run(
        ["simulators.fleet", "--json", "--preset", "default", "--orders", "400"],
        {**os.environ, "TMPDIR": str(tmp_path)},
        tmp_path,
        "csdp-fleet-*/*.sqlite*",
        signal_number,
    )
    stderr = result.stderr

    assert result.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "fleet: " in stderr
    assert words in stderr
    assert list(tmp_path.glob("csdp-fleet-*")) == []
