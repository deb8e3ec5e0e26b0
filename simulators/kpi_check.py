"""Compare the figures of GET /v1/kpi with the independent computation in simulators/kpi_reference.py."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

import httpx

from shared_schema import RecordedEvent

from .kpi_reference import reference_kpis

GROUPINGS = ("engineer", "asset", "day")
COUNT_FIGURES = {"restored", "reacted", "first_time_fixes", "repeat_base", "repeats", "sla_met", "sla_flagged", "sla_unknown"}


class ProjectorBehind(RuntimeError):
    """The KPI projector did not reach the head of the log in time, so its figures cannot be compared."""


def wait_for_projector(office: httpx.Client, window: tuple[dt.datetime, dt.datetime], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        body = fetch_kpi(office, window, "engineer")
        projector = body["projector"]
        if projector["positions_behind"] == 0:
            return
        if time.monotonic() > deadline:
            raise ProjectorBehind(
                f"the KPI projector is {projector['positions_behind']} positions behind the log after {timeout} s"
            )
        time.sleep(0.2)


def fetch_kpi(office: httpx.Client, window: tuple[dt.datetime, dt.datetime], group_by: str) -> dict[str, Any]:
    start, end = window
    response = office.get(
        "/v1/kpi", params={"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by}
    )
    response.raise_for_status()
    return response.json()


def flatten_group(group: dict[str, Any]) -> dict[str, Any]:
    """Rename the fields of one KPI group of the API to the names the reference computation uses."""
    utilisation = group["utilisation"]
    travel = group["travel_share"]
    return {
        "restored": group["time_to_restoration"]["count"],
        "restoration_seconds": group["time_to_restoration"]["total_seconds"],
        "mttr_seconds": group["time_to_restoration"]["mean_seconds"],
        "repair_seconds": group["active_repair_time"]["total_seconds"],
        "mean_repair_seconds": group["active_repair_time"]["mean_seconds"],
        "reacted": group["reaction_time"]["count"],
        "reaction_seconds": group["reaction_time"]["total_seconds"],
        "mean_reaction_seconds": group["reaction_time"]["mean_seconds"],
        "first_time_fixes": group["first_time_fix"]["hits"],
        "first_time_fix_rate": group["first_time_fix"]["rate"],
        "repeat_base": group["repeat_visit"]["count"],
        "repeats": group["repeat_visit"]["hits"],
        "repeat_rate": group["repeat_visit"]["rate"],
        "sla_unknown": group["sla_unknown"],
        "travel_seconds": travel["numerator_seconds"],
        "on_site_seconds": travel["denominator_seconds"] - travel["numerator_seconds"],
        "travel_share": travel["ratio"],
        "working_seconds": utilisation["numerator_seconds"] if utilisation else None,
        "available_seconds": utilisation["denominator_seconds"] if utilisation else None,
        "utilisation": utilisation["ratio"] if utilisation else None,
    }


def compare_figures(label: str, served: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    problems = []
    for name, value in served.items():
        reference = expected[name]
        if name in COUNT_FIGURES or value is None or reference is None:
            same = value == reference
        else:
            same = math.isclose(value, reference, rel_tol=1e-9, abs_tol=1e-6)
        if not same:
            problems.append(f"{label}: {name} is {value} from /v1/kpi, {reference} from the raw log")
    return problems


def kpi_window(log: list[RecordedEvent]) -> tuple[dt.datetime, dt.datetime]:
    """Whole UTC days around every effective time in the log, so no event falls outside the window."""
    first = min(event.effective_time for event in log).astimezone(dt.timezone.utc)
    last = max(event.effective_time for event in log).astimezone(dt.timezone.utc)
    start = dt.datetime(first.year, first.month, first.day, tzinfo=dt.timezone.utc)
    end = dt.datetime(last.year, last.month, last.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    return start, end


def kpi_problems(office: httpx.Client, log: list[RecordedEvent]) -> list[str]:
    """Check every group of /v1/kpi against the reference, for each grouping, over the whole run.

    Simulated orders name no contract, so the server has no SLA flag for
    them and both sides count every restored order as `sla_unknown`.
    """
    if not log:
        return []
    window = kpi_window(log)
    try:
        wait_for_projector(office, window)
    except ProjectorBehind as exc:
        return [str(exc)]
    problems: list[str] = []
    for group_by in GROUPINGS:
        served = {group["key"]: flatten_group(group) for group in fetch_kpi(office, window, group_by)["groups"]}
        expected = reference_kpis(log, window[0], window[1], group_by)
        missing = sorted(map(str, expected.keys() - served.keys()))
        extra = sorted(map(str, served.keys() - expected.keys()))
        if missing:
            problems.append(f"group_by={group_by}: groups {missing[:5]} are missing from /v1/kpi")
        if extra:
            problems.append(f"group_by={group_by}: /v1/kpi has groups {extra[:5]} that the raw log does not give")
        for key in sorted(served.keys() & expected.keys(), key=str):
            problems.extend(compare_figures(f"group_by={group_by} key={key}", served[key], expected[key]))
    return problems
