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
import sys
from pathlib import Path
from typing import Any

import msgspec
import structlog
from rich.console import Console
from rich.table import Table

from server.logging import CurrentStream

from .cli_types import probability, whole_number
from .run import RunOptions, run
from .scenario import Scenario, ScenarioError, decode_scenario, load_preset, load_scenario, preset_names

DEFAULT_PRESET = "default"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.fleet",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    source = parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", type=Path, help="scenario file, .toml or .json (see docs/simulator.md)")
    source.add_argument("--preset", help=f"built-in scenario: {', '.join(preset_names())}; {DEFAULT_PRESET} when none is given")
    source.add_argument("--replay", type=Path, help="replay file written by a failed run; repeats that run")

    # Overrides of the scenario's values.
    parser.add_argument("--seed", type=int, help="random seed; the same seed and scenario repeat the same run")
    parser.add_argument("--store", choices=["sqlite", "postgres", "postgres-private"], help="store of the started server")
    parser.add_argument("--engineers", type=whole_number(1), help="number of engineer tablets")
    parser.add_argument("--orders", type=whole_number(1), help="work orders to create, all on one simulated day")
    parser.add_argument("--max-ticks", type=whole_number(1), help="upper bound on simulation steps")
    parser.add_argument("--offline-probability", type=probability, help="chance per tick that a tablet goes offline")
    parser.add_argument("--max-offline-ticks", type=whole_number(1), help="maximum length of an offline window, in ticks")
    parser.add_argument("--lost-response-rate", type=probability, help="share of POSTs whose response is lost after commit")
    parser.add_argument("--reassign-probability", type=probability, help="chance per tick and open order of a reassignment")
    parser.add_argument("--cancel-probability", type=probability, help="chance per tick and open order of a cancellation")

    # Where the server runs.
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CSDP_DATABASE_URL") or None,
        help="PostgreSQL database for store postgres, e.g. postgresql://postgres@127.0.0.1:5432/postgres, taken "
        "from CSDP_DATABASE_URL when set. The run uses a new schema in that database and drops it at the end, "
        "unless the run fails or --keep-files is set. Giving it without --store selects store postgres",
    )
    parser.add_argument("--server-url", help="use a running server instead of starting one; needs --var-dir of that server, and --database-url when it runs on PostgreSQL")
    parser.add_argument("--var-dir", type=Path, help="server folder with the development key; a new temporary folder when not given")

    # Output.
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument("--report", type=Path, help="write a Markdown report with plots into this folder")
    parser.add_argument(
        "--replay-out", type=Path, help="where a failed run writes its replay file; fleet-replay-NAME-seedN.json when not given"
    )
    parser.add_argument("--keep-files", action="store_true", help="keep the tablets' SQLite files, the server folder and the PostgreSQL schema")

    args = parser.parse_args(argv)
    if args.server_url:
        if args.var_dir is None:
            parser.error("--server-url needs --var-dir, the folder with that server's development key")
        if not (args.var_dir / "dev-jwt-key").is_file():
            parser.error(f"--var-dir {args.var_dir} has no dev-jwt-key; give the CSDP_VAR_DIR of the server at --server-url")
    return args


def read_replay(path: Path) -> Scenario:
    """Read a replay file: a JSON object with the run's `scenario`, whose `seed` and `store` are those of the run."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"replay file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("scenario"), dict):
        raise ScenarioError(f"replay file {path} has no scenario object at `$.scenario`")
    return decode_scenario(data["scenario"], f"in replay file {path}")


def build_scenario(args: argparse.Namespace) -> Scenario:
    """Load the chosen scenario and apply the command-line overrides, validating the result as a whole."""
    if args.replay:
        scenario = read_replay(args.replay)
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


def write_replay(path: Path, scenario: Scenario, summary: dict[str, Any]) -> None:
    body = {
        "command": f"python -m simulators.fleet --replay {path}",
        "violated": sorted(name for name, holds in summary["invariants"].items() if not holds),
        "scenario": msgspec.to_builtins(scenario),
    }
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def print_summary(summary: dict[str, Any]) -> None:
    console = Console()
    table = Table(
        title=f"Invariants ({summary['scenario']}, seed {summary['seed']}, {summary['engineers']} engineers, "
        f"{summary['orders']} orders, {summary['store']})"
    )
    table.add_column("invariant")
    table.add_column("holds")
    for name, holds in summary["invariants"].items():
        table.add_row(name, "[green]yes[/green]" if holds else "[red]NO[/red]")
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
    try:
        scenario = build_scenario(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = RunOptions(
        scenario=scenario,
        database_url=args.database_url,
        server_url=args.server_url,
        var_dir=args.var_dir,
        keep_files=args.keep_files,
        show_progress=not args.json,
    )
    summary, telemetry = run(options)

    if not summary["ok"]:
        replay_path = args.replay_out or Path(f"fleet-replay-{scenario.name}-seed{scenario.seed}.json")
        write_replay(replay_path, scenario, summary)
        summary["replay_file"] = str(replay_path)
        violated = ", ".join(name for name, holds in summary["invariants"].items() if not holds)
        print(f"invariants violated: {violated}; replay with: python -m simulators.fleet --replay {replay_path}", file=sys.stderr)
    if args.report:
        from .report import write_report

        summary["report"] = str(write_report(args.report, scenario, summary, telemetry))
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(summary)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
