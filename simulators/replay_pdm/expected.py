"""Figures computed straight from the maintenance log, without the product, to check GET /v1/kpi against.

The definitions repeat those of `docs/kpi.md` for this input: every failure
row is one corrective order, none is cancelled, and a time between failures
is the gap between two distinct failure times of one machine, both in the
replayed window.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from .dataset import FleetLog, asset_id


def expected_figures(log: FleetLog) -> dict[str, dict[str, object]]:
    """Return failures per machine, per component and per model, and the time between failures per model."""
    per_machine = Counter(asset_id(failure.machine_id) for failure in log.failures)
    per_component = Counter(failure.component for failure in log.failures)
    per_model = Counter(log.machines[failure.machine_id].model for failure in log.failures)

    times_by_machine: dict[int, set] = defaultdict(set)
    for failure in log.failures:
        times_by_machine[failure.machine_id].add(failure.time)
    gap_count: Counter[str] = Counter()
    gap_seconds: Counter[str] = Counter()
    for machine_id, times in times_by_machine.items():
        ordered = sorted(times)
        model = log.machines[machine_id].model
        for earlier, later in zip(ordered, ordered[1:]):
            gap_count[model] += 1
            gap_seconds[model] += int((later - earlier).total_seconds())
    mtbf = {
        model: {
            "count": gap_count[model],
            "total_seconds": float(gap_seconds[model]),
            "mean_seconds": gap_seconds[model] / gap_count[model],
        }
        for model in sorted(gap_count)
    }
    return {
        "failures_per_machine": dict(sorted(per_machine.items())),
        "failures_per_component": dict(sorted(per_component.items())),
        "failures_per_model": dict(sorted(per_model.items())),
        "time_between_failures_per_model": mtbf,
    }
