"""Markdown report of a fleet run, with plots drawn by matplotlib into PNG files beside it."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # The Agg backend writes files and needs no display.

import matplotlib.pyplot as plt  # noqa: E402

from .scenario import Scenario  # noqa: E402
from .telemetry import Telemetry  # noqa: E402

MAX_DEVICES_PLOTTED = 12


def holds_text(holds: bool | None) -> str:
    if holds is None:
        return "not checked"
    if holds:
        return "yes"
    return "**NO**"


def write_report(folder: Path, scenario: Scenario, summary: dict[str, Any], telemetry: Telemetry) -> Path:
    """Write report.md and its three plots into `folder`, creating it, and return the path of report.md."""
    folder.mkdir(parents=True, exist_ok=True)
    minutes = telemetry.clock.minutes_per_tick
    _plot_decisions_over_time(folder / "decisions-by-reason.png", telemetry)
    _plot_queue_depth(folder / "queue-depth.png", telemetry)
    _plot_time_to_decision(folder / "time-to-decision.png", telemetry, minutes)

    delays = sorted(record.decided_tick - record.recorded_tick for record in telemetry.decisions)
    seconds = sorted(record.seconds_to_decision for record in telemetry.decisions)
    lines = [
        f"# Fleet run: {scenario.name}, seed {scenario.seed}",
        "",
        scenario.description,
        "",
        f"Store: {summary['store']}. {summary['engineers']} engineers, {summary['orders']} orders, "
        f"{summary['ticks']} ticks of {minutes} simulated minutes, {summary['seconds']} s of wall time.",
        "",
        "## Invariants",
        "",
        "| invariant | holds |",
        "| --- | --- |",
        *[f"| {name} | {holds_text(holds)} |" for name, holds in summary["invariants"].items()],
        "",
    ]
    for name, reason in summary.get("not_checked", {}).items():
        lines += [f"{name} was not checked: {reason}.", ""]
    if summary["violations"]:
        lines += ["Violations:", "", *[f"- {violation}" for violation in summary["violations"]], ""]
    lines += [
        "## Faults injected",
        "",
        "| fault | count |",
        "| --- | ---: |",
        f"| responses lost after commit | {summary['lost_responses']} |",
        f"| connections reset | {summary['connection_resets']} |",
        f"| injected 503 responses | {summary['injected_503']} |",
        f"| server killed with SIGKILL | {summary['server_kills']} |",
        f"| PostgreSQL restarts | {summary['postgres_restarts']} |",
        "",
        "## Decisions",
        "",
        "| status:reason_code | count |",
        "| --- | ---: |",
        *[f"| {key} | {count} |" for key, count in summary["decisions"].items()],
        "",
        "![Decisions by reason code over time](decisions-by-reason.png)",
        "",
        "## Queue depth per device",
        "",
        "Events recorded on a device and not yet decided by the server, sampled at the end of each tick.",
        "",
        "![Queue depth per device](queue-depth.png)",
        "",
        "## Time from record to decision",
        "",
        f"{len(delays)} decisions. In ticks: median {_percentile(delays, 50)}, 95th percentile "
        f"{_percentile(delays, 95)}, maximum {delays[-1] if delays else '-'}. In wall seconds: median "
        f"{_format_seconds(_percentile(seconds, 50))}, 95th percentile {_format_seconds(_percentile(seconds, 95))}.",
        "",
        "![Time from record to decision](time-to-decision.png)",
        "",
        "Reproduce this run with `python -m simulators.fleet --replay FILE`, where FILE contains",
        "`{\"scenario\": ...}` with the scenario below.",
        "",
        "```json",
        _scenario_json(scenario),
        "```",
        "",
    ]
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _percentile(values: list, percent: int):
    if not values:
        return "-"
    return values[min(len(values) - 1, len(values) * percent // 100)]


def _format_seconds(value: object) -> str:
    return f"{value:.3f} s" if isinstance(value, float) else str(value)


def _scenario_json(scenario: Scenario) -> str:
    import json

    import msgspec

    return json.dumps(msgspec.to_builtins(scenario), indent=2)


def _plot_decisions_over_time(path: Path, telemetry: Telemetry) -> None:
    """Plot the running count per reason. The lower panel leaves out `applied`, which dwarfs the rest."""
    per_reason: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for record in telemetry.decisions:
        per_reason[f"{record.status}:{record.reason_code}"][record.decided_tick] += 1
    figure, (every_axes, conflict_axes) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    ticks = list(range(1, max(telemetry.clock.tick, 1) + 1))
    palette = plt.get_cmap("tab20")
    for index, (reason, counts) in enumerate(sorted(per_reason.items())):
        running, series = 0, []
        for tick in ticks:
            running += counts.get(tick, 0)
            series.append(running)
        # One colour per reason in both panels, so the lower one reads with the upper legend.
        color = palette(index % palette.N)
        every_axes.step(ticks, series, where="post", label=reason, color=color)
        if reason != "ACCEPTED:applied":
            conflict_axes.step(ticks, series, where="post", label=reason, color=color)
    for axes in (every_axes, conflict_axes):
        _mark_faults(axes, telemetry)
        axes.set_ylabel("decisions so far")
    every_axes.set_title("Decisions by status and reason code over time")
    every_axes.legend(fontsize="small", loc="upper left")
    conflict_axes.set_title("The same without ACCEPTED:applied")
    conflict_axes.set_xlabel("tick")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_queue_depth(path: Path, telemetry: Telemetry) -> None:
    figure, axes = plt.subplots(figsize=(10, 5))
    # The devices with the deepest queues, so a large fleet still gives a readable plot.
    devices = sorted(telemetry.queue_depth, key=lambda name: -max(depth for _, depth in telemetry.queue_depth[name]))
    for name in devices[:MAX_DEVICES_PLOTTED]:
        samples = telemetry.queue_depth[name]
        axes.step([tick for tick, _ in samples], [depth for _, depth in samples], where="post", label=name)
    _mark_faults(axes, telemetry)
    axes.set_xlabel("tick")
    axes.set_ylabel("pending events")
    plotted = min(len(devices), MAX_DEVICES_PLOTTED)
    axes.set_title(f"Queue depth per device ({plotted} of {len(devices)} devices, deepest first)")
    if devices:
        axes.legend(fontsize="small", loc="upper right", ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_time_to_decision(path: Path, telemetry: Telemetry, minutes_per_tick: int) -> None:
    figure, axes = plt.subplots(figsize=(10, 5))
    delays = [(record.decided_tick - record.recorded_tick) * minutes_per_tick for record in telemetry.decisions]
    if delays:
        axes.hist(delays, bins=min(50, max(10, len(set(delays)))))
    axes.set_xlabel("simulated minutes from record on the device to the decision reaching it")
    axes.set_ylabel("events")
    axes.set_yscale("log")
    axes.set_title("Time from record to decision")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _mark_faults(axes, telemetry: Telemetry) -> None:
    for killed, restarted in telemetry.server_outages:
        axes.axvspan(killed, restarted, color="red", alpha=0.15)
    for tick in telemetry.postgres_restarts:
        axes.axvline(tick, color="purple", linestyle="--", alpha=0.5)
