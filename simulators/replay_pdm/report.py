"""Markdown report of a replay with PNG plots: failures and SLA compliance per month, MTTR and reaction per model, decisions."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from .dataset import FleetLog  # noqa: E402


def _month(day: str) -> str:
    return day[:7]


def _monthly(day_groups: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Add the day groups of GET /v1/kpi up per month: failures and SLA hits and counts."""
    months: dict[str, dict[str, float]] = collections.defaultdict(lambda: {"failures": 0, "sla_hits": 0, "sla_count": 0})
    for group in day_groups:
        if group["key"] is None:
            continue
        month = months[_month(group["key"])]
        month["failures"] += group["failures"]
        month["sla_hits"] += group["sla_compliance"]["hits"]
        month["sla_count"] += group["sla_compliance"]["count"]
    return dict(sorted(months.items()))


def _hours(seconds: float | None) -> float:
    return seconds / 3600 if seconds is not None else float("nan")


def _plot_failures(path: Path, months: dict[str, dict[str, float]], file_counts: dict[str, int]) -> None:
    labels = sorted(set(months) | set(file_counts))
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.bar(labels, [months.get(label, {}).get("failures", 0) for label in labels], label="GET /v1/kpi", color="#4c72b0")
    axes.plot(labels, [file_counts.get(label, 0) for label in labels], "o", color="#dd8452", label="CSV file")
    axes.set_ylabel("failures (corrective orders)")
    axes.set_title("Failures per month")
    axes.tick_params(axis="x", rotation=45)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_models(path: Path, model_groups: list[dict[str, Any]]) -> None:
    groups = [group for group in model_groups if group["key"] is not None]
    labels = [group["key"] for group in groups]
    mttr = [_hours(group["time_to_restoration"]["mean_seconds"]) for group in groups]
    reaction = [_hours(group["reaction_time"]["mean_seconds"]) for group in groups]
    positions = range(len(labels))
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.bar([position - 0.2 for position in positions], mttr, width=0.4, label="MTTR (created to last completion)")
    axes.bar([position + 0.2 for position in positions], reaction, width=0.4, label="reaction (created to first arrival)")
    axes.set_xticks(list(positions), labels)
    axes.set_ylabel("hours")
    axes.set_title("Corrective orders: MTTR and reaction time per machine model")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_sla(path: Path, months: dict[str, dict[str, float]]) -> None:
    labels = [month for month, figures in months.items() if figures["sla_count"]]
    rates = [100 * months[month]["sla_hits"] / months[month]["sla_count"] for month in labels]
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.plot(labels, rates, "o-")
    axes.set_ylim(0, 105)
    axes.set_ylabel("resolution SLA met, % of restored orders")
    axes.set_title("SLA compliance per month (corrective orders of the fleet contract)")
    axes.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_decisions(path: Path, decisions: dict[str, int]) -> None:
    labels = list(decisions)
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(labels) + 1.5))
    axes.barh(labels, [decisions[label] for label in labels])
    axes.set_xscale("log")
    axes.set_xlabel("events (log scale)")
    axes.set_title("Decisions by status and reason code")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return lines


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_report(summary: dict[str, Any], window_log: FleetLog, folder: Path) -> Path:
    """Write report.md and four PNG files into `folder`, creating it, and return the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    months = _monthly(summary["kpi"]["day"])
    file_counts = collections.Counter(failure.time.strftime("%Y-%m") for failure in window_log.failures)
    model_groups = summary["kpi"]["asset_model"]
    _plot_failures(folder / "failures-per-month.png", months, dict(file_counts))
    _plot_models(folder / "mttr-reaction-per-model.png", model_groups)
    _plot_sla(folder / "sla-compliance-per-month.png", months)
    _plot_decisions(folder / "decisions-by-reason.png", summary["decisions"])

    window = summary["window"]
    lines = [
        "# Replay of the fleet maintenance log",
        "",
        f"Window {window['from']} to {window['to']}, seed {summary['seed']}, {summary['engineers']} engineers, "
        f"store {summary['store']}, machine errors as {summary['errors']}. "
        f"Orders: {', '.join(f'{count} {kind}' for kind, count in summary['orders'].items())}; "
        f"{summary['recorded_events']} events recorded, {summary['reassignments']} reassignments, "
        f"{summary['lost_responses']} responses lost; run time {summary['seconds']} s.",
        "",
        "Produced by `python -m simulators.replay_pdm` (see `docs/pdm-replay.md`).",
        "",
        "## Invariants",
        "",
        *_table(["invariant", "holds"], [[name, "yes" if holds else "NO"] for name, holds in summary["invariants"].items()]),
        "",
        "## GET /v1/kpi against the CSV files",
        "",
    ]
    by_figure: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in summary["comparison"]:
        by_figure[row["figure"]].append(row)
    rows = [
        [figure, len(items), sum(item["equal"] for item in items)] for figure, items in by_figure.items()
    ]
    lines += _table(["figure", "keys", "equal"], rows)
    lines += ["", "Failures and mean time between failures per machine model:", ""]
    failures_per_model = {row["key"]: row for row in by_figure["failures_per_model"]}
    mtbf_per_model = {row["key"]: row for row in by_figure["time_between_failures_per_model"]}
    model_rows = []
    for model in sorted(set(failures_per_model) | set(mtbf_per_model)):
        failures = failures_per_model.get(model, {})
        mtbf = mtbf_per_model.get(model, {})
        product_mtbf = (mtbf.get("product") or {}).get("mean_seconds")
        file_mtbf = (mtbf.get("file") or {}).get("mean_seconds")
        model_rows.append(
            [model, failures.get("product"), failures.get("file"), _number(_hours(product_mtbf)), _number(_hours(file_mtbf))]
        )
    lines += _table(["model", "failures (product)", "failures (file)", "MTBF h (product)", "MTBF h (file)"], model_rows)
    lines += ["", "Failures per component:", ""]
    lines += _table(
        ["component", "product", "file"], [[row["key"], row["product"], row["file"]] for row in by_figure["failures_per_component"]]
    )
    lines += [
        "",
        "## Plots",
        "",
        "![Failures per month](failures-per-month.png)",
        "",
        "![MTTR and reaction time per machine model](mttr-reaction-per-model.png)",
        "",
        "![SLA compliance per month](sla-compliance-per-month.png)",
        "",
        "![Decisions by reason code](decisions-by-reason.png)",
        "",
        "## Service figures per machine model (corrective orders)",
        "",
    ]
    lines += _table(
        ["model", "restored", "MTTR h", "reaction h", "first-time fix", "SLA met"],
        [
            [
                group["key"],
                group["time_to_restoration"]["count"],
                _number(_hours(group["time_to_restoration"]["mean_seconds"])),
                _number(_hours(group["reaction_time"]["mean_seconds"])),
                _number(group["first_time_fix"]["rate"], 3),
                _number(group["sla_compliance"]["rate"], 3),
            ]
            for group in model_groups
            if group["key"] is not None
        ],
    )
    lines += ["", "## Decisions", ""]
    lines += _table(["status:reason_code", "events"], [[key, count] for key, count in summary["decisions"].items()])
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
