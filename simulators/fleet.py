"""Fleet simulator: engineers with offline tablets, a dispatcher, injected faults, invariant checks.

    python -m simulators.fleet --preset smoke
    python -m simulators.fleet --scenario my-fleet.toml --store postgres --report out/
    python -m simulators.fleet --replay fleet-replay-smoke-seed1.json

Without `--server-url` it starts `csdp serve` on a free loopback port. Exit
status 1 when any invariant is violated. A replay file then contains the seed and
the scenario that reproduce the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import msgspec
import structlog
from rich.console import Console
from rich.table import Table

from server.logging import CurrentStream

from .cli_types import DefaultsHelpFormatter, probability, whole_number
from .interrupts import interrupted_status, raise_on_sigterm
from .run import RunOptions, RunSetupError, run
from .scenario import Scenario, ScenarioError, decode_scenario, load_preset, load_scenario, preset_names

DEFAULT_PRESET = "default"
RUN_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,40}$")


class OptionError(ValueError):
    """An output path or a replay file's server that cannot be used; found before the run starts."""


def _override_help(text: str, key: str, preset: Scenario) -> str:
    table, field = key.split(".")
    value = getattr(getattr(preset, table), field)
    return f"{text}; overrides {key} of the scenario ({value} in preset {DEFAULT_PRESET})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet",
        description=__doc__.split("\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    preset = load_preset(DEFAULT_PRESET)

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", type=Path, help="scenario file, .toml or .json (see docs/simulator.md)")
    source.add_argument("--preset", help=f"built-in scenario: {', '.join(preset_names())}; {DEFAULT_PRESET} when none is given")
    source.add_argument("--replay", type=Path, help="replay file written by a failed run; repeats that run")

    # Overrides of the scenario's values.
    parser.add_argument(
        "--seed", type=int, help=f"random seed; the same seed and scenario repeat the same run; overrides seed of the "
        f"scenario ({preset.seed} in preset {DEFAULT_PRESET})"
    )
    parser.add_argument(
        "--store", choices=["sqlite", "postgres", "postgres-private"],
        help=f"store of the started server; overrides store of the scenario ({preset.store} in preset {DEFAULT_PRESET})",
    )
    parser.add_argument("--engineers", type=whole_number(1), help=_override_help("number of engineer tablets", "fleet.engineers", preset))
    parser.add_argument(
        "--orders", type=whole_number(1),
        help=_override_help("work orders to create, all on one simulated day", "fleet.orders_per_day", preset),
    )
    parser.add_argument("--max-ticks", type=whole_number(1), help=_override_help("upper bound on simulation steps", "fleet.max_ticks", preset))
    parser.add_argument(
        "--offline-probability", type=probability,
        help=_override_help("chance per tick that a tablet goes offline", "connectivity.offline_probability", preset),
    )
    parser.add_argument(
        "--max-offline-ticks", type=whole_number(1),
        help=_override_help("maximum length of an offline window, in ticks", "connectivity.max_offline_ticks", preset),
    )
    parser.add_argument(
        "--lost-response-rate", type=probability,
        help=_override_help("share of POSTs whose response is lost after commit", "faults.lost_response_rate", preset),
    )
    parser.add_argument(
        "--reassign-probability", type=probability,
        help=_override_help("chance per tick and open order of a reassignment", "dispatcher.reassign_probability", preset),
    )
    parser.add_argument(
        "--cancel-probability", type=probability,
        help=_override_help("chance per tick and open order of a cancellation", "dispatcher.cancel_probability", preset),
    )

    # Where the server runs.
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL database for store postgres, e.g. postgresql://postgres@127.0.0.1:5432/postgres, taken "
        "from CSDP_DATABASE_URL when set. The run uses a new schema in that database and drops it at the end, "
        "unless the run fails or --keep-files is set. Giving it without --store selects store postgres",
    )
    parser.add_argument(
        "--server-url",
        help="use a running server instead of starting one; needs --var-dir of that server, and --database-url when it "
        "runs on PostgreSQL. The run's order ids then carry a run token, wo-SEED-TOKEN-00001",
    )
    parser.add_argument("--var-dir", type=Path, help="server folder with the development key; a new temporary folder when not given")

    # Output.
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument("--report", type=Path, help="write a Markdown report with plots into this folder")
    parser.add_argument(
        "--replay-out", type=Path, help="where a failed run writes its replay file; fleet-replay-NAME-seedN.json when not given"
    )
    parser.add_argument("--keep-files", action="store_true", help="keep the tablets' SQLite files, the server folder and the PostgreSQL schema")

    args = parser.parse_args(argv)
    # Read here rather than as the option's default, so that --help never prints the URL and its password.
    args.database_url = args.database_url or os.environ.get("CSDP_DATABASE_URL") or None
    if args.server_url and args.var_dir is None:
        parser.error("--server-url needs --var-dir, the folder with that server's development key")
    if args.server_url:
        try:
            check_var_dir(args.var_dir, "--var-dir")
        except OptionError as exc:
            parser.error(str(exc))
    return args


def check_var_dir(var_dir: Path, source: str) -> None:
    if not (var_dir / "dev-jwt-key").is_file():
        raise OptionError(f"{source} {var_dir} has no dev-jwt-key; give the CSDP_VAR_DIR of the server at --server-url")


def _replay_text(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ScenarioError(f"replay file {path} has an invalid `$.{key}`: expected a non-empty string, got {value!r}")
    return value


def read_replay(path: Path, args: argparse.Namespace) -> Scenario:
    """Read a replay file: a JSON object with the run's `scenario`, whose `seed` and `store` are those of the run.

    A run against a running server also wrote `server_url`, `var_dir` and
    `run_token`. They fill in --server-url, --var-dir and the run token unless
    the command line gives --server-url and --var-dir.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"replay file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenario"), dict):
        raise ScenarioError(f"replay file {path} has no scenario object at `$.scenario`")
    server_url = _replay_text(data, "server_url", path)
    var_dir = _replay_text(data, "var_dir", path)
    run_token = _replay_text(data, "run_token", path)
    if run_token is not None and not RUN_TOKEN_PATTERN.match(run_token):
        raise ScenarioError(f"replay file {path} has an invalid `$.run_token`: expected letters, digits and -, got {run_token!r}")
    if server_url and not args.server_url:
        args.server_url = server_url
        args.var_dir = Path(var_dir) if var_dir else args.var_dir
        if args.var_dir is None:
            raise ScenarioError(f"replay file {path} names server_url {server_url!r} but no `$.var_dir`; give --var-dir")
    args.run_token = run_token
    return decode_scenario(data["scenario"], f"in replay file {path}")


def build_scenario(args: argparse.Namespace) -> Scenario:
    """Load the chosen scenario and apply the command-line overrides, validating the result as a whole."""
    args.run_token = None
    if args.replay:
        scenario = read_replay(args.replay, args)
    elif args.scenario:
        scenario = load_scenario(args.scenario)
    else:
        scenario = load_preset(args.preset or DEFAULT_PRESET)

    data: dict[str, Any] = msgspec.to_builtins(scenario)
    if args.seed is not None:
        data["seed"] = args.seed
    if args.store is not None:
        data["store"] = args.store
    elif args.database_url and not args.server_url and not args.replay and data["store"] == "sqlite":
        data["store"] = "postgres"
    overrides = {
        ("fleet", "engineers"): args.engineers,
        ("fleet", "orders_per_day"): args.orders,
        ("fleet", "max_ticks"): args.max_ticks,
        ("connectivity", "offline_probability"): args.offline_probability,
        ("connectivity", "max_offline_ticks"): args.max_offline_ticks,
        ("faults", "lost_response_rate"): args.lost_response_rate,
        ("dispatcher", "reassign_probability"): args.reassign_probability,
        ("dispatcher", "cancel_probability"): args.cancel_probability,
    }
    for (table, key), value in overrides.items():
        if value is not None:
            data[table][key] = value
    if args.orders is not None:
        data["fleet"]["days"] = 1
    return decode_scenario(data, "after the command-line options")


def check_outputs(args: argparse.Namespace, replay_path: Path) -> None:
    """Check before the run that its replay file and report can be written, so a bad path fails at once."""
    folder = replay_path.parent
    if not folder.is_dir():
        raise OptionError(f"the replay file's folder {folder} does not exist; create it or choose another --replay-out")
    if replay_path.is_dir():
        raise OptionError(f"--replay-out {replay_path} is a folder; give a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(f"the replay file's folder {folder} is not writable; choose another --replay-out")
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise OptionError(f"--report {args.report} is an existing file; give a folder")
    if args.report is not None and not args.report.exists() and not args.report.parent.is_dir():
        raise OptionError(f"--report {args.report}: its parent folder {args.report.parent} does not exist")
    if args.server_url:
        check_var_dir(args.var_dir, "--var-dir")


def new_run_token(seed: int) -> str:
    """Return a per-run token for order ids on a server the run did not start: the seed and six random hex digits."""
    return f"{seed}-{secrets.token_hex(3)}"


def write_replay(path: Path, scenario: Scenario, summary: dict[str, Any], options: RunOptions) -> None:
    body: dict[str, Any] = {
        "command": f"python -m simulators.fleet --replay {path}",
        "violated": sorted(name for name, holds in summary["invariants"].items() if holds is False),
        "scenario": msgspec.to_builtins(scenario),
    }
    if options.server_url:
        body["server_url"] = options.server_url
        body["var_dir"] = str(options.var_dir)
        body["run_token"] = options.run_token
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _holds_cell(holds: bool | None) -> str:
    if holds is None:
        return "[yellow]not checked[/yellow]"
    if holds:
        return "[green]yes[/green]"
    return "[red]NO[/red]"


def print_summary(summary: dict[str, Any]) -> None:
    console = Console()
    table = Table(
        title=f"Invariants ({summary['scenario']}, seed {summary['seed']}, {summary['engineers']} engineers, "
        f"{summary['orders']} orders, {summary['store']})"
    )
    table.add_column("invariant")
    table.add_column("holds")
    for name, holds in summary["invariants"].items():
        table.add_row(name, _holds_cell(holds))
    console.print(table)
    decisions = Table(title="Decisions by status and reason code")
    decisions.add_column("status:reason_code")
    decisions.add_column("count", justify="right")
    for key, count in summary["decisions"].items():
        decisions.add_row(key, str(count))
    console.print(decisions)
    console.print(
        f"{summary['recorded_events']} events recorded in {summary['ticks']} ticks, {summary['seconds']} s; faults: "
        f"{summary['lost_responses']} responses lost, {summary['connection_resets']} connections reset, "
        f"{summary['injected_503']} injected 503, {summary['server_kills']} server kills, "
        f"{summary['postgres_restarts']} PostgreSQL restarts"
    )
    for name, reason in summary.get("not_checked", {}).items():
        console.print(f"[yellow]not checked[/yellow] {name}: {reason}")
    for violation in summary["violations"]:
        console.print(f"[red]violation[/red] {violation}")


def configure_logging() -> None:
    """Send the simulator's log lines to stderr, so stdout carries only the summary.

    The SDK logs each failed sync as a warning. Under injected faults these are
    expected by the thousand, and the summary counts the faults instead.
    """
    logging.getLogger("client_sdk").setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(CurrentStream("stderr")),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    raise_on_sigterm()
    try:
        scenario = build_scenario(args)
        replay_path = args.replay_out or Path(f"fleet-replay-{scenario.name}-seed{scenario.seed}.json")
        check_outputs(args, replay_path)
    except (ScenarioError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_token = args.run_token
    if args.server_url and run_token is None:
        run_token = new_run_token(scenario.seed)
    options = RunOptions(
        scenario=scenario,
        database_url=args.database_url,
        server_url=args.server_url,
        var_dir=args.var_dir,
        keep_files=args.keep_files,
        show_progress=not args.json,
        run_token=run_token,
    )
    try:
        summary, telemetry = run(options)
    except RunSetupError as exc:
        print(f"error: {exc.code}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt as exc:
        return interrupted_status(exc, "fleet")

    # The invariant table comes first, so a file that then fails to be written cannot hide the result.
    if not args.json:
        print_summary(summary)
    written_ok = True
    try:
        if not summary["ok"]:
            write_replay(replay_path, scenario, summary, options)
            summary["replay_file"] = str(replay_path)
            violated = ", ".join(name for name, holds in summary["invariants"].items() if holds is False)
            print(f"invariants violated: {violated}; replay with: python -m simulators.fleet --replay {replay_path}", file=sys.stderr)
        if args.report:
            from .report import write_report

            summary["report"] = str(write_report(args.report, scenario, summary, telemetry))
    except OSError as exc:
        print(f"error: the run finished but a file could not be written: {exc}", file=sys.stderr)
        written_ok = False
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if summary["ok"] and written_ok else 1


if __name__ == "__main__":
    sys.exit(main())
