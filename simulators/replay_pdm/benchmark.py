"""The replay's own section of docs/benchmarks.md: machine, command, run time and the compared figures."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
import sys
from pathlib import Path
from typing import Any

HEADING = "## Fleet maintenance log replay"


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f}"


def section_text(
    summary: dict[str, Any], command: str, load_before: float, load_after: float, benchmarks: Path = Path("docs/benchmarks.md")
) -> str:
    """Return the Markdown section for one replay, starting with HEADING."""
    window = summary["window"]
    rows = summary["comparison"]
    equal = sum(row["equal"] for row in rows)
    failures = {row["key"]: row for row in rows if row["figure"] == "failures_per_model"}
    gaps = {row["key"]: row for row in rows if row["figure"] == "time_between_failures_per_model"}
    models = {group["key"]: group for group in summary["kpi"]["asset_model"] if group["key"] is not None}
    decided = sum(summary["decisions"].values())
    not_applied = {key: count for key, count in summary["decisions"].items() if not key.startswith("ACCEPTED")}
    lines = [
        HEADING,
        "",
        f"Written by `python -m simulators.replay_pdm --benchmarks {benchmarks}`; `docs/pdm-replay.md`"
        " describes the replay. The clients, the server and its store share the cores, so the run time is that"
        " of this machine under this load only.",
        "",
        f"- Machine: {os.cpu_count()} cores, CPython {platform.python_version()}, {platform.platform()},"
        f" SQLite {sqlite3.sqlite_version}.",
        f"- One-minute load average: {load_before:.2f} at the start and {load_after:.2f} at the end.",
        f"- Command: `{command}`",
        f"- Date: {dt.date.today().isoformat()}. Store: {summary['store']}. Window {window['from']} to"
        f" {window['to']}, seed {summary['seed']}, {summary['engineers']} engineers, errors as {summary['errors']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| run time | {summary['seconds']} s |",
        f"| simulated hours | {summary['simulated_hours']} |",
        f"| orders | {', '.join(f'{count} {kind}' for kind, count in summary['orders'].items())} |",
        f"| events recorded by the tablets | {summary['recorded_events']} |",
        f"| decisions other than applied | {sum(not_applied.values())} of {decided}:"
        f" {', '.join(f'{key} {count}' for key, count in not_applied.items()) or 'none'} |",
        f"| reassignments, responses lost | {summary['reassignments']}, {summary['lost_responses']} |",
        f"| invariants held | {sum(summary['invariants'].values())} of {len(summary['invariants'])} |",
        f"| KPI figures equal to the CSV computation | {equal} of {len(rows)} |",
        "",
        "| model | failures (KPI, CSV) | MTBF h (KPI, CSV) | restored | MTTR h | reaction h | SLA met |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in sorted(set(failures) | set(gaps) | set(models)):
        failure_row = failures.get(model, {})
        gap_row = gaps.get(model, {})
        group = models.get(model)
        product_gap = (gap_row.get("product") or {}).get("mean_seconds")
        file_gap = (gap_row.get("file") or {}).get("mean_seconds")
        restored = group["time_to_restoration"]["count"] if group else "-"
        mttr = _hours(group["time_to_restoration"]["mean_seconds"]) if group else "-"
        reaction = _hours(group["reaction_time"]["mean_seconds"]) if group else "-"
        sla = group["sla_compliance"]["rate"] if group else None
        lines.append(
            f"| {model} | {failure_row.get('product')}, {failure_row.get('file')} | {_hours(product_gap)},"
            f" {_hours(file_gap)} | {restored} | {mttr} | {reaction} | {'-' if sla is None else f'{sla:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def command_line() -> str:
    return "python -m simulators.replay_pdm " + " ".join(sys.argv[1:])
