"""The fleet maintenance log replay: one month end to end, the log reader, the file-side figures and the options."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from interrupt_helpers import interrupt_run

from simulators.replay_pdm.__main__ import main, parse_args
from simulators.replay_pdm.agents import ReplayBehaviour
from simulators.replay_pdm.calendars import shift_of
from simulators.replay_pdm.compare import comparison_rows
from simulators.replay_pdm.dataset import (
    DATA_FOLDER,
    DatasetError,
    Failure,
    FleetLog,
    Machine,
    load_fleet_log,
)
from simulators.replay_pdm.expected import expected_figures
from simulators.replay_pdm.benchmark import section_text
from simulators.replay_pdm.run import EmptyWindowError, ReplayOptions, replay

UTC = dt.timezone.utc
ROOT = Path(__file__).resolve().parent.parent


def at(day: int, hour: int = 6) -> dt.datetime:
    return dt.datetime(2020, 3, day, hour, tzinfo=UTC)


# --- One month end to end ---------------------------------------------------------------


def test_month_replay_holds_invariants_and_figures(tmp_path: Path) -> None:
    report_folder = tmp_path / "report"
    benchmarks = tmp_path / "benchmarks.md"
    benchmarks.write_text("# Benchmarks\n\n## Ingestion\n\nfigures\n")
    result = subprocess.run(
        [
            sys.executable, "-m", "simulators.replay_pdm", "--months", "1", "--seed", "3",
            "--reassign-probability", "0.01", "--json", "--report", str(report_folder),
            "--benchmarks", str(benchmarks),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["store"] == "sqlite"
    for name, holds in summary["invariants"].items():
        assert holds, f"{name}: {summary['violations']}"
    unequal = [row for row in summary["comparison"] if not row["equal"]]
    assert unequal == []
    figures = {row["figure"] for row in summary["comparison"]}
    assert figures == {
        "failures_per_machine",
        "failures_per_component",
        "failures_per_model",
        "time_between_failures_per_model",
    }
    january = load_fleet_log().window(dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2020, 2, 1, tzinfo=UTC))
    assert summary["orders"]["corrective"] == len(january.failures)
    assert summary["orders"]["preventive"] == len(january.replacements)
    conflicts = {key: count for key, count in summary["decisions"].items() if not key.startswith("ACCEPTED")}
    assert conflicts, "no late event was rejected or held for review"
    assert summary["reassignments"] > 0
    assert summary["ok"] is True
    for name in (
        "report.md",
        "failures-per-month.png",
        "mttr-reaction-per-model.png",
        "sla-compliance-per-month.png",
        "decisions-by-reason.png",
    ):
        assert (report_folder / name).stat().st_size > 0, name
    assert "## GET /v1/kpi against the CSV files" in (report_folder / "report.md").read_text()
    section = benchmarks.read_text()
    assert section.startswith("# Benchmarks\n\n## Ingestion\n\nfigures\n\n## Fleet maintenance log replay\n")
    compared = len(summary["comparison"])
    assert f"| KPI figures equal to the CSV computation | {compared} of {compared} |" in section


def test_week_replay_on_postgres_with_fault_reports(postgres_database: str) -> None:
    log = load_fleet_log()
    options = ReplayOptions(
        log=log,
        window_start=dt.datetime(2020, 6, 1, tzinfo=UTC),
        window_end=dt.datetime(2020, 6, 8, tzinfo=UTC),
        seed=5,
        engineers=6,
        errors="faults",
        behaviour=ReplayBehaviour(reassign_probability=0.01),
        database_url=postgres_database,
        show_progress=False,
    )

    summary = replay(options)

    assert summary["store"] == "postgresql"
    assert all(summary["invariants"].values()), summary["violations"]
    assert [row for row in summary["comparison"] if not row["equal"]] == []
    week = log.window(options.window_start, options.window_end)
    assert summary["orders"]["inspection"] == len(week.errors)
    assert summary["ok"] is True


# --- The log reader ---------------------------------------------------------------------


def test_log_has_published_row_counts() -> None:
    log = load_fleet_log()

    assert len(log.machines) == 100
    assert len(log.failures) == 761
    assert len(log.errors) == 3919
    # 743 of the 3,286 replacements repaired a failure at the same time; the rest were planned.
    assert len(log.replacements) == 3286 - 743


def _copy_data(tmp_path: Path) -> Path:
    folder = tmp_path / "pdm"
    shutil.copytree(DATA_FOLDER, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def _replace_line(path: Path, line_number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line_number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("file_name", "line_number", "text", "message"),
    [
        ("PdM_failures.csv", 2, "2020-13-05 06:00:00,1,comp4", "line 2: datetime '2020-13-05 06:00:00' is invalid"),
        ("PdM_failures.csv", 3, "2020-03-06 06:00:00,101,comp1", "line 3: machineID 101 is not in PdM_machines.csv"),
        ("PdM_failures.csv", 2, "2020-01-05 06:00:00,x,comp4", "line 2: machineID 'x' is not a whole number"),
        ("PdM_maint.csv", 2, "2019-06-01 06:00:00,1,spindle", "line 2: comp 'spindle' is invalid, expected compN"),
        ("PdM_errors.csv", 2, "2020-01-03 07:00:00,1,warning", "line 2: errorID 'warning' is invalid"),
        ("PdM_machines.csv", 3, "1,model4,7", "line 3: machineID 1 appears twice"),
        ("PdM_machines.csv", 2, "1,model3,-1", "line 2: age -1 is negative"),
        ("PdM_machines.csv", 2, "1,model3,old", "line 2: age 'old' is not a whole number"),
        ("PdM_failures.csv", 1, "when,machineID,failure", "missing column(s) datetime"),
    ],
)
def test_log_reader_rejects_bad_value(tmp_path: Path, file_name: str, line_number: int, text: str, message: str) -> None:
    folder = _copy_data(tmp_path)
    _replace_line(folder / file_name, line_number, text)

    with pytest.raises(DatasetError) as raised:
        load_fleet_log(folder)

    assert message in str(raised.value)
    assert file_name in str(raised.value)


def test_log_reader_names_missing_file(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    (folder / "PdM_errors.csv").unlink()

    with pytest.raises(DatasetError, match="PdM_errors.csv not found"):
        load_fleet_log(folder)


def test_cli_reports_bad_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--data", str(tmp_path / "missing"), "--months", "1"])

    assert status == 2
    assert "PdM_machines.csv not found" in capsys.readouterr().err


# --- Figures from the file and their comparison -----------------------------------------


def _small_log() -> FleetLog:
    machines = {1: Machine(1, "model1", 10), 2: Machine(2, "model1", 3), 3: Machine(3, "model2", 20)}
    failures = [
        Failure(at(1), 1, "comp1"),
        # Two components of one machine failing at once are one stop: no zero gap.
        Failure(at(3), 1, "comp2"),
        Failure(at(3), 1, "comp3"),
        Failure(at(4), 1, "comp1"),
        Failure(at(2), 2, "comp1"),
        Failure(at(5), 3, "comp4"),
    ]
    return FleetLog(machines=machines, failures=failures, replacements=[], errors=[])


def test_expected_figures_count_failures() -> None:
    figures = expected_figures(_small_log())

    assert figures["failures_per_machine"] == {"machine-001": 4, "machine-002": 1, "machine-003": 1}
    assert figures["failures_per_component"] == {"comp1": 3, "comp2": 1, "comp3": 1, "comp4": 1}
    assert figures["failures_per_model"] == {"model1": 5, "model2": 1}


def test_expected_gaps_skip_simultaneous_failures() -> None:
    figures = expected_figures(_small_log())

    # Machine 1 stops on days 1, 3 and 4: gaps of 48 h and 24 h. Machines 2 and 3 fail once.
    assert figures["time_between_failures_per_model"] == {
        "model1": {"count": 2, "total_seconds": 72 * 3600.0, "mean_seconds": 36 * 3600.0}
    }


def test_comparison_flags_difference_and_missing_key() -> None:
    expected = {"failures_per_model": {"model1": 5, "model2": 1}}
    product = {"failures_per_model": {"model1": 4, "model3": 2}}

    rows = {row["key"]: row for row in comparison_rows(product, expected)}

    assert rows["model1"]["equal"] is False
    assert rows["model2"] == {"figure": "failures_per_model", "key": "model2", "product": None, "file": 1, "equal": False}
    assert rows["model3"]["file"] is None
    assert rows["model3"]["equal"] is False


def test_comparison_accepts_equal_figures() -> None:
    expected = expected_figures(_small_log())

    rows = comparison_rows(json.loads(json.dumps(expected)), expected)

    assert rows
    assert all(row["equal"] for row in rows)


# --- Shifts -----------------------------------------------------------------------------


def test_shift_next_working_time() -> None:
    early = shift_of(0)  # Monday to Friday, 06:00-14:00
    saturday = dt.datetime(2020, 3, 7, 10, tzinfo=UTC)
    tuesday_noon = dt.datetime(2020, 3, 10, 12, tzinfo=UTC)
    tuesday_evening = dt.datetime(2020, 3, 10, 15, tzinfo=UTC)

    assert early.next_working_time(saturday) == dt.datetime(2020, 3, 9, 6, tzinfo=UTC)
    assert early.next_working_time(tuesday_noon) == tuesday_noon
    assert early.next_working_time(tuesday_evening) == dt.datetime(2020, 3, 11, 6, tzinfo=UTC)


# --- Options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--months", "1", "--to", "2020-03-01"], "--months and --to both set the end"),
        (["--from", "2020-03-01", "--to", "2020-02-01"], "must be before --to"),
        (["--from", "March"], "expected a date such as 2020-03-01"),
        (["--months", "0"], "expected a whole number of 1 or more, got '0'"),
        (["--engineers", "1"], "expected a whole number of 2 or more, got '1'"),
        (["--offline-probability", "1.5"], "expected a probability from 0 to 1, got '1.5'"),
        (["--errors", "emails"], "invalid choice: 'emails'"),
        (["--sla-clock-seconds", "-1"], "--sla-clock-seconds must be from 0 to 86400, got -1.0"),
        (["--benchmarks", "/nonexistent/bench.md"], "--benchmarks /nonexistent/bench.md must be a Markdown file in an"),
        (["--benchmarks", "/tmp"], "--benchmarks /tmp must be a Markdown file in an existing folder"),
        (["--report", "/nonexistent/report"], "its parent folder /nonexistent does not exist"),
    ],
)
def test_options_reject_bad_value(arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_args(arguments)

    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_options_months_sets_window_end() -> None:
    args = parse_args(["--from", "2020-11-01", "--months", "3"])

    assert args.window_start == dt.datetime(2020, 11, 1, tzinfo=UTC)
    assert args.window_end == dt.datetime(2021, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--months", "13"], "--months ends the window at 2021-02-01T00:00:00+00:00, after the end of the log; the log "
         "covers 2019-06-01 to 2021-01-02"),
        (["--months", "1000"], "--months ends the window at 2103-05-01T00:00:00+00:00, after the end of the log"),
        (["--from", "2020-12-01", "--to", "2021-01-03"], "--to ends the window at 2021-01-03T00:00:00+00:00"),
        (["--from", "2019-05-01"], "--from 2019-05-01T00:00:00+00:00 is before the start of the log"),
        (["--from", "2021-03-01", "--months", "1"], "--from 2021-03-01T00:00:00+00:00 is after the end of the log"),
    ],
)
def test_cli_rejects_window_outside_the_log(arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main([*arguments, "--json"])

    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "replay_started" not in err


def test_options_reject_existing_file_as_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")

    with pytest.raises(SystemExit) as raised:
        parse_args(["--report", str(tmp_path / "afile")])

    assert raised.value.code == 2
    assert f"--report {tmp_path / 'afile'} is an existing file" in capsys.readouterr().err


def test_cli_empty_window_is_an_option_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--from", "2020-01-01T00:00", "--to", "2020-01-01T01:00", "--json"])

    assert status == 2
    assert "contains no failure and no replacement" in capsys.readouterr().err


def test_benchmark_section_names_the_given_file() -> None:
    summary = {
        "window": {"from": "2020-03-01", "to": "2020-04-01"},
        "comparison": [],
        "kpi": {"asset_model": []},
        "decisions": {"ACCEPTED:applied": 3},
        "store": "sqlite",
        "seed": 1,
        "engineers": 8,
        "errors": "notes",
        "seconds": 1.0,
        "simulated_hours": 744,
        "orders": {"corrective": 1},
        "recorded_events": 3,
        "reassignments": 0,
        "lost_responses": 0,
        "invariants": {"a": True},
    }

    text = section_text(summary, "python -m simulators.replay_pdm", 0.5, 0.6, Path("out/bench.md"))

    assert "--benchmarks out/bench.md`" in text
    assert "docs/benchmarks.md" not in text


@pytest.mark.parametrize(("signal_number", "status", "words"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupted_replay_removes_its_folder(tmp_path: Path, signal_number: int, status: int, words: str) -> None:
    result = interrupt_run(
        ["simulators.replay_pdm", "--months", "12", "--json"],
        {**os.environ, "TMPDIR": str(tmp_path)},
        tmp_path,
        "csdp-replay-pdm-*/server/*",
        signal_number,
    )
    stderr = result.stderr

    assert result.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "replay_pdm: " in stderr
    assert words in stderr
    assert list(tmp_path.glob("csdp-replay-pdm-*")) == []


def test_empty_window_stops_before_server_starts() -> None:
    options = ReplayOptions(
        log=load_fleet_log(),
        window_start=dt.datetime(2018, 1, 1, tzinfo=UTC),
        window_end=dt.datetime(2018, 2, 1, tzinfo=UTC),
        show_progress=False,
    )

    with pytest.raises(EmptyWindowError, match="contains no failure and no replacement"):
        replay(options)


