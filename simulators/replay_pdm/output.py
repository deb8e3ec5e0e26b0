"""Terminal output of a replay: invariants, the comparison table and the decisions."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: object) -> str:
    if isinstance(value, dict):
        mean = value.get("mean_seconds")
        hours = f"{mean / 3600:.1f} h" if isinstance(mean, (int, float)) else "-"
        return f"{hours} ({value.get('count')} gaps)"
    return "-" if value is None else str(value)


def print_summary(summary: dict[str, Any]) -> None:
    console = Console()
    window = summary["window"]
    invariants = Table(title=f"Invariants (seed {summary['seed']}, {window['from']} to {window['to']}, {summary['store']})")
    invariants.add_column("invariant")
    invariants.add_column("holds")
    for name, holds in summary["invariants"].items():
        invariants.add_row(name, "[green]yes[/green]" if holds else "[red]NO[/red]")
    console.print(invariants)

    comparison = Table(title="GET /v1/kpi against the CSV files")
    for column in ("figure", "key", "product", "file", "equal"):
        comparison.add_column(column, justify="right" if column in ("product", "file") else "left")
    for row in summary["comparison"]:
        equal = "[green]yes[/green]" if row["equal"] else "[red]NO[/red]"
        comparison.add_row(row["figure"], row["key"], _cell(row["product"]), _cell(row["file"]), equal)
    console.print(comparison)

    decisions = Table(title="Decisions by status and reason code")
    decisions.add_column("status:reason_code")
    decisions.add_column("count", justify="right")
    for key, count in summary["decisions"].items():
        decisions.add_row(key, str(count))
    console.print(decisions)

    orders = ", ".join(f"{count} {kind}" for kind, count in summary["orders"].items())
    console.print(
        f"{orders} orders; {summary['recorded_events']} events recorded over {summary['simulated_hours']} simulated "
        f"hours; {summary['reassignments']} reassignments, {summary['lost_responses']} responses lost, "
        f"{summary['notes_from_errors']} errors as notes ({summary['errors_without_open_order']} without an open "
        f"order); {summary['seconds']} s"
    )
    if summary["orders_not_closed"]:
        console.print(f"orders not closed at the end: {', '.join(summary['orders_not_closed'])}")
    for violation in summary["violations"]:
        console.print(f"[red]violation[/red] {violation}")
    if summary.get("report"):
        console.print(f"report: {summary['report']}")
