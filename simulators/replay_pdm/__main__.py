"""Replay a public fleet's year of failures and planned replacements through the SDK and the server.

    python -m simulators.replay_pdm --months 1
    python -m simulators.replay_pdm --from 2020-03-01 --to 2020-04-01 --json
    python -m simulators.replay_pdm --report docs/pdm-replay

Starts `csdp serve` on a free loopback port over a fresh SQLite file, or over
a new schema of the PostgreSQL database in CSDP_DATABASE_URL. Exit status 1
when an invariant is violated or a figure of GET /v1/kpi differs from the
same figure computed from the CSV files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import structlog

from server.logging import CurrentStream

from ..bench_doc import write_section
from ..cli_types import DefaultsHelpFormatter, probability, whole_number
from ..interrupts import interrupted_status, raise_on_sigterm
from .agents import ReplayBehaviour
from .benchmark import command_line, section_text
from .dataset import DATA_FOLDER, UTC, DatasetError, FleetLog, load_fleet_log
from .output import print_summary
from .run import EmptyWindowError, ReplayOptions, replay

DEFAULT_START = dt.datetime(2020, 1, 1, tzinfo=UTC)
DEFAULT_END = dt.datetime(2021, 1, 1, tzinfo=UTC)


def _date(raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date such as 2020-03-01 or an ISO 8601 instant, got {raw!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _add_months(start: dt.datetime, months: int) -> dt.datetime:
    month_index = start.month - 1 + months
    return start.replace(year=start.year + month_index // 12, month=month_index % 12 + 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.replay_pdm",
        description=(__doc__ or "").split("\n")[0],
        formatter_class=DefaultsHelpFormatter,
    )
    window = parser.add_argument_group("window of the log to replay, [from, to) in UTC")
    window.add_argument("--from", dest="window_start", type=_date, default=DEFAULT_START, help="first instant replayed")
    window.add_argument("--to", dest="window_end", type=_date, help=f"end of the window, exclusive; {DEFAULT_END.date()} when neither --to nor --months is given")
    window.add_argument("--months", type=whole_number(1), help="replay this many calendar months from --from instead of --to")

    team = parser.add_argument_group("the team and its behaviour")
    team.add_argument("--seed", type=int, default=1, help="random seed; the same seed repeats the same run")
    team.add_argument("--engineers", type=whole_number(2), default=8, help="number of engineer tablets")
    team.add_argument(
        "--errors",
        choices=("notes", "faults", "off"),
        default="notes",
        help="machine errors become notes on an open order of the machine, inspection orders (faults), or nothing",
    )
    team.add_argument("--lead-days", type=whole_number(0), default=7, help="days between creating a preventive order and its planned start")
    team.add_argument("--offline-probability", type=probability, default=0.03, help="chance per simulated hour that a tablet goes offline")
    team.add_argument("--max-offline-hours", type=whole_number(1), default=10, help="maximum length of an offline window, in simulated hours")
    team.add_argument("--lost-response-rate", type=probability, default=0.02, help="share of POSTs whose response is lost after commit")
    team.add_argument("--reassign-probability", type=probability, default=0.003, help="chance per simulated hour that the dispatcher reassigns an order not yet started")
    team.add_argument("--drain-days", type=whole_number(0), default=14, help="simulated days after the window to finish open orders")
    team.add_argument(
        "--sla-clock-seconds",
        type=float,
        default=0.0,
        help="CSDP_SLA_CLOCK_SECONDS of the started server; 0 keeps the SLA clock job off (see docs/pdm-replay.md)",
    )

    where = parser.add_argument_group("input and output")
    where.add_argument("--data", type=Path, default=DATA_FOLDER, help="folder with the four PdM_*.csv files")
    where.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL database, taken from CSDP_DATABASE_URL when set; the run uses a new schema and drops it "
        "at the end unless the run fails or --keep-files is set. Without it the server uses a fresh SQLite file",
    )
    where.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    where.add_argument("--report", type=Path, help="write report.md and its PNG plots into this folder")
    where.add_argument(
        "--benchmarks",
        type=Path,
        help="write the run time and figures into the replay's section of this Markdown file, e.g. docs/benchmarks.md",
    )
    where.add_argument("--keep-files", action="store_true", help="keep the tablets' SQLite files, the server folder and the PostgreSQL schema")

    args = parser.parse_args(argv)
    # Read here rather than as the option's default, so that --help never prints the URL and its password.
    args.database_url = args.database_url or os.environ.get("CSDP_DATABASE_URL") or None
    if args.months is not None and args.window_end is not None:
        parser.error("--months and --to both set the end of the window; give one of them")
    if args.months is not None:
        args.window_end = _add_months(args.window_start, args.months)
    elif args.window_end is None:
        args.window_end = DEFAULT_END
    if args.window_start >= args.window_end:
        parser.error(f"--from {args.window_start.isoformat()} must be before --to {args.window_end.isoformat()}")
    if args.benchmarks is not None and (args.benchmarks.is_dir() or not args.benchmarks.parent.is_dir()):
        parser.error(f"--benchmarks {args.benchmarks} must be a Markdown file in an existing folder")
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        parser.error(f"--report {args.report} is an existing file; give a folder")
    if args.report is not None and not args.report.exists() and not args.report.parent.is_dir():
        parser.error(f"--report {args.report}: its parent folder {args.report.parent} does not exist")
    if not 0 <= args.sla_clock_seconds <= 86400:
        parser.error(f"--sla-clock-seconds must be from 0 to 86400, got {args.sla_clock_seconds}")
    return args


def window_problem(args: argparse.Namespace, fleet_log: FleetLog) -> str | None:
    """Name the end of the window that lies outside the log, whose span runs from the day of its first record
    to the day after its last (2019-06-01 to 2021-01-02 for the published files)."""
    span = fleet_log.span()
    if span is None:
        return f"the log in {args.data} has no failure, replacement or error"
    first, end = span
    covers = f"the log covers {first.date()} to {end.date()}"
    if args.window_start < first:
        return f"--from {args.window_start.isoformat()} is before the start of the log; {covers}"
    if args.window_start >= end:
        return f"--from {args.window_start.isoformat()} is after the end of the log; {covers}"
    if args.window_end > end:
        option = "--months" if args.months is not None else "--to"
        return (
            f"{option} ends the window at {args.window_end.isoformat()}, after the end of the log; {covers}, so the "
            f"window can end at {end.date()} at the latest"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Log lines go to stderr, so that stdout carries only the summary (one JSON object with --json).
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(CurrentStream("stderr")))
    try:
        fleet_log = load_fleet_log(args.data)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = window_problem(args, fleet_log)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    behaviour = ReplayBehaviour(
        offline_probability=args.offline_probability,
        max_offline_hours=args.max_offline_hours,
        lost_response_rate=args.lost_response_rate,
        reassign_probability=args.reassign_probability,
    )
    options = ReplayOptions(
        log=fleet_log,
        window_start=args.window_start,
        window_end=args.window_end,
        seed=args.seed,
        engineers=args.engineers,
        errors=args.errors,
        lead_days=args.lead_days,
        drain_days=args.drain_days,
        sla_clock_seconds=args.sla_clock_seconds,
        behaviour=behaviour,
        database_url=args.database_url,
        keep_files=args.keep_files,
        show_progress=not args.json,
    )
    load_before = os.getloadavg()[0]
    raise_on_sigterm()
    try:
        summary = replay(options)
    except EmptyWindowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return interrupted_status(exc, "replay_pdm")
    # The summary comes first, so a file that then fails to be written cannot hide the result.
    if not args.json:
        print_summary(summary)
    written_ok = True
    try:
        if args.benchmarks is not None:
            section = section_text(summary, command_line(), load_before, os.getloadavg()[0], args.benchmarks)
            write_section(args.benchmarks, section)
        if args.report is not None:
            from .report import write_report

            summary["report"] = str(write_report(summary, fleet_log.window(args.window_start, args.window_end), args.report))
    except OSError as exc:
        print(f"error: the replay finished but a file could not be written: {exc}", file=sys.stderr)
        written_ok = False
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    return 0 if summary["ok"] and written_ok else 1


if __name__ == "__main__":
    sys.exit(main())
