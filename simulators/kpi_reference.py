"""A second, deliberately plain computation of the KPIs in docs/kpi.md, for the engine tests and the fleet simulator.

It replays each work order by itself into plain dicts, with its own table of
the status each event type leads to, and measures interval overlaps by
walking the UTC days of the window one by one. It shares no code with
server/kpi: the tests compare the two, figure by figure.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

UTC = dt.timezone.utc
MICROSECOND = dt.timedelta(microseconds=1)

# Status after each event type that changes it. The reference trusts the log
# to be valid, so the status before the event does not matter.
NEXT_STATUS = {
    "created": "new",
    "assigned": "assigned",
    "reassigned": "assigned",
    "unassigned": "new",
    "declined": "new",
    "cancelled": "cancelled",
    "accepted": "accepted",
    "travel_started": "en_route",
    "arrived": "on_site",
    "work_started": "in_progress",
    "hold_started": "on_hold",
    "work_resumed": "in_progress",
    "completed": "completed",
    "closed": "closed",
    "reopened": "assigned",
}
TIMED_STATUSES = {"en_route": "travel", "on_site": "on_site", "in_progress": "work"}


def micros(delta: dt.timedelta) -> int:
    return delta // MICROSECOND


def replay_one_order(events: list[Any]) -> dict[str, Any]:
    """Replay one order's events, already in stream order, into a dict of facts."""
    created = events[0]
    order: dict[str, Any] = {
        "id": created.work_order_id,
        "created": created.effective_time,
        "asset": created.payload.get("asset_id"),
        "contract": created.payload.get("contract_id"),
        "preventive": created.payload.get("maintenance_type") == "preventive",
        "component": created.payload.get("component"),
        "status": "new",
        "arrivals": [],
        "completions": [],
        "intervals": [],
    }
    engineer = None
    entered_at = created.effective_time
    for event in events[1:]:
        when = event.effective_time
        if event.type == "arrived":
            order["arrivals"].append((when, engineer))
        if event.type == "completed":
            order["completions"].append((when, engineer, event.payload.get("fixed", True)))

        new_status = NEXT_STATUS.get(event.type, order["status"])
        if new_status != order["status"]:
            if order["status"] in TIMED_STATUSES:
                order["intervals"].append(
                    {"kind": TIMED_STATUSES[order["status"]], "engineer": engineer, "start": entered_at, "end": when}
                )
            order["status"] = new_status
            entered_at = when

        if event.type in ("assigned", "reassigned"):
            engineer = event.payload["engineer_id"]
        if event.type in ("unassigned", "declined"):
            engineer = None
        if event.type == "reopened" and event.payload.get("engineer_id"):
            engineer = event.payload["engineer_id"]
    return order


def overlap(start: dt.datetime, end: dt.datetime, low: dt.datetime, high: dt.datetime) -> dt.timedelta:
    return max(dt.timedelta(0), min(end, high) - max(start, low))


def days_of_window(window_start: dt.datetime, window_end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """List each UTC day the window touches, as (date, start, end) cut to the window."""
    days = []
    day = window_start.astimezone(UTC).date()
    while True:
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        if midnight >= window_end:
            break
        low = max(midnight, window_start)
        high = min(midnight + dt.timedelta(days=1), window_end)
        days.append((day.isoformat(), low, high))
        day += dt.timedelta(days=1)
    return days


def new_group() -> dict[str, Any]:
    return {
        "restored": 0,
        "restoration_us": 0,
        "repair_us": 0,
        "first_time_fixes": 0,
        "repeat_base": 0,
        "repeats": 0,
        "sla_met": 0,
        "sla_flagged": 0,
        "sla_unknown": 0,
        "reacted": 0,
        "reaction_us": 0,
        "travel_us": 0,
        "on_site_us": 0,
        "working_us": 0,
        "available_us": 0,
        "failures": 0,
        "failure_gaps": 0,
        "failure_gap_us": 0,
    }


def reference_kpis(
    events: list[Any],
    window_start: dt.datetime,
    window_end: dt.datetime,
    group_by: str,
    repeat_window_days: int = 30,
    asset_contracts: dict[str, str] | None = None,
    order_models: dict[str, str] | None = None,
    sla_met: dict[str, bool] | None = None,
    available_hours_per_day: dict[str, float] | None = None,
) -> dict[str | None, dict[str, Any]]:
    """Return {group key: figures} with the same meaning as the engine's KpiGroup fields."""
    asset_contracts = asset_contracts or {}
    order_models = order_models or {}
    sla_met = sla_met or {}
    hours = available_hours_per_day or {}

    streams: dict[str, list[Any]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.global_position):
        streams[event.work_order_id].append(event)
    orders = [replay_one_order(stream) for stream in streams.values()]
    orders_on_asset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for order in orders:
        orders_on_asset[order["asset"]].append(order)

    def contract(order: dict[str, Any]) -> str | None:
        if order["contract"] is not None:
            return order["contract"]
        return asset_contracts.get(order["asset"]) if order["asset"] is not None else None

    def key_for(order: dict[str, Any], engineer: str | None, when: dt.datetime) -> str | None:
        if group_by == "engineer":
            return engineer
        if group_by == "asset":
            return order["asset"]
        if group_by == "contract":
            return contract(order)
        if group_by == "component":
            return order["component"]
        if group_by == "asset_model":
            return order_models.get(order["id"])
        return when.astimezone(UTC).date().isoformat()

    groups: dict[str | None, dict[str, Any]] = defaultdict(new_group)

    def in_window(when: dt.datetime) -> bool:
        return window_start <= when < window_end

    # Failures: every corrective, not cancelled order created in the window. The gap to the
    # latest earlier distinct creation instant on the same asset (and component, when grouped
    # by component) within the window.
    failures = [
        order
        for order in orders
        if not order["preventive"] and order["status"] != "cancelled" and in_window(order["created"])
    ]
    for order in failures if group_by != "engineer" else []:
        group = groups[key_for(order, None, order["created"])]
        group["failures"] += 1
        if order["asset"] is None:
            continue
        earlier = [
            other["created"]
            for other in failures
            if other["asset"] == order["asset"]
            and (group_by != "component" or other["component"] == order["component"])
            and other["created"] < order["created"]
        ]
        if earlier:
            group["failure_gaps"] += 1
            group["failure_gap_us"] += micros(order["created"] - max(earlier))

    for order in orders:
        if order["preventive"]:
            continue
        if order["arrivals"] and in_window(order["arrivals"][0][0]):
            arrived_at, engineer = order["arrivals"][0]
            group = groups[key_for(order, engineer, arrived_at)]
            group["reacted"] += 1
            group["reaction_us"] += micros(arrived_at - order["created"])

        if order["status"] not in ("completed", "closed"):
            continue
        done_at, engineer, fixed = order["completions"][-1]
        if not in_window(done_at):
            continue
        group = groups[key_for(order, engineer, done_at)]
        group["restored"] += 1
        group["restoration_us"] += micros(done_at - order["created"])
        group["repair_us"] += sum(micros(i["end"] - i["start"]) for i in order["intervals"] if i["kind"] == "work")
        if len(order["arrivals"]) == 1 and fixed:
            group["first_time_fixes"] += 1
        if order["asset"] is not None:
            group["repeat_base"] += 1
            limit = done_at + dt.timedelta(days=repeat_window_days)
            follow_ups = [
                other
                for other in orders_on_asset[order["asset"]]
                if other["status"] != "cancelled"
                and not other["preventive"]
                and done_at < other["created"] <= limit
            ]
            if follow_ups:
                group["repeats"] += 1
        if order["id"] in sla_met:
            group["sla_flagged"] += 1
            group["sla_met"] += 1 if sla_met[order["id"]] else 0
        else:
            group["sla_unknown"] += 1

    # Time figures: every interval against every UTC day of the window.
    engaged: dict[tuple[str | None, str], list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for order in orders:
        for interval in order["intervals"]:
            for day, low, high in days_of_window(window_start, window_end):
                part = overlap(interval["start"], interval["end"], low, high)
                if part <= dt.timedelta(0):
                    continue
                piece_start = max(interval["start"], low)
                engaged[(interval["engineer"], day)].append((piece_start, piece_start + part))
                key = day if group_by == "day" else key_for(order, interval["engineer"], piece_start)
                group = groups[key]
                if interval["kind"] == "travel":
                    group["travel_us"] += micros(part)
                else:
                    group["on_site_us"] += micros(part)
                if interval["kind"] == "work":
                    group["working_us"] += micros(part)

    if group_by in ("engineer", "day"):
        for (engineer, day), pieces in engaged.items():
            if engineer in hours:
                available = micros(dt.timedelta(hours=hours[engineer]))
            else:
                available = micros(max(end for _, end in pieces) - min(start for start, _ in pieces))
            groups[engineer if group_by == "engineer" else day]["available_us"] += available

    return {key: finish(group, group_by) for key, group in groups.items()}


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def finish(group: dict[str, Any], group_by: str) -> dict[str, Any]:
    """Turn microsecond totals into seconds and add the means and rates."""
    seconds = {name: value / 10**6 for name, value in group.items() if name.endswith("_us")}
    result = {name: value for name, value in group.items() if not name.endswith("_us")}
    result.update({name[:-3] + "_seconds": value for name, value in seconds.items()})
    result["mttr_seconds"] = ratio(seconds["restoration_us"], group["restored"])
    result["mean_repair_seconds"] = ratio(seconds["repair_us"], group["restored"])
    result["mean_reaction_seconds"] = ratio(seconds["reaction_us"], group["reacted"])
    result["first_time_fix_rate"] = ratio(group["first_time_fixes"], group["restored"])
    result["repeat_rate"] = ratio(group["repeats"], group["repeat_base"])
    result["sla_rate"] = ratio(group["sla_met"], group["sla_flagged"])
    result["mtbf_seconds"] = ratio(seconds["failure_gap_us"], group["failure_gaps"])
    result["travel_share"] = ratio(group["travel_us"], group["travel_us"] + group["on_site_us"])
    if group_by in ("engineer", "day"):
        result["utilisation"] = ratio(group["working_us"], group["available_us"])
    else:
        result["utilisation"] = None
        result["available_seconds"] = None
        result["working_seconds"] = None
    return result
