"""Computation of the field-service KPIs from the accepted event log.

`docs/kpi.md` defines each figure, its source and how it is attributed to a
window and a group.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping

from shared_schema import RecordedEvent, WorkOrderStatus

from .availability import available_time
from .failures import failures_in_window
from .figures import KpiGroup, KpiReport, duration_ratio, mean_duration, rate
from .history import OrderHistory, replay_orders
from .periods import clip, split_by_utc_day, utc_day
from .query import GroupBy, KpiQuery, build_query

RESTORED_STATES = (WorkOrderStatus.COMPLETED, WorkOrderStatus.CLOSED)
ZERO = dt.timedelta(0)


@dataclasses.dataclass
class _GroupTotals:
    """Running counts and summed durations of one group."""

    restored: int = 0
    restoration_total: dt.timedelta = ZERO
    active_repair_total: dt.timedelta = ZERO
    first_time_fixes: int = 0
    repeat_base: int = 0
    repeats: int = 0
    sla_met: int = 0
    sla_flagged: int = 0
    sla_unknown: int = 0
    reacted: int = 0
    reaction_total: dt.timedelta = ZERO
    travel: dt.timedelta = ZERO
    on_site: dt.timedelta = ZERO
    working: dt.timedelta = ZERO
    available: dt.timedelta = ZERO
    failures: int = 0
    failure_gaps: int = 0
    failure_gap_total: dt.timedelta = ZERO


def _order_key(query: KpiQuery, order: OrderHistory, engineer_id: str | None, instant: dt.datetime) -> str | None:
    """Return the group of an order-level figure recorded by `engineer_id` at `instant`."""
    if query.group_by is GroupBy.ENGINEER:
        return engineer_id
    if query.group_by is GroupBy.ASSET:
        return order.asset_id
    if query.group_by is GroupBy.CONTRACT:
        return contract_of(order, query.asset_contracts)
    if query.group_by is GroupBy.COMPONENT:
        return order.component
    if query.group_by is GroupBy.ASSET_MODEL:
        return query.order_models.get(order.work_order_id)
    return utc_day(instant)


def contract_of(order: OrderHistory, asset_contracts: Mapping[str, str]) -> str | None:
    """Return the contract named at creation, else the one the caller maps the order's asset to."""
    if order.contract_id is not None:
        return order.contract_id
    if order.asset_id is None:
        return None
    return asset_contracts.get(order.asset_id)


def _creations_by_asset(orders: Iterable[OrderHistory]) -> dict[str, list[dt.datetime]]:
    """Return the sorted creation times of the corrective orders on each asset, leaving out cancelled orders.

    A preventive order was planned, not called because the fault came back,
    so it makes no repeat visit.
    """
    creations: dict[str, list[dt.datetime]] = defaultdict(list)
    for order in orders:
        if order.asset_id is not None and order.corrective and order.status is not WorkOrderStatus.CANCELLED:
            creations[order.asset_id].append(order.created_at)
    for times in creations.values():
        times.sort()
    return creations


def _has_repeat(creation_times: list[dt.datetime], completed_at: dt.datetime, repeat_window: dt.timedelta) -> bool:
    """Tell whether an order was created in (completed_at, completed_at + repeat_window]."""
    index = bisect.bisect_right(creation_times, completed_at)
    return index < len(creation_times) and creation_times[index] <= completed_at + repeat_window


def _add_restorations(query: KpiQuery, orders: Iterable[OrderHistory], totals: dict[str | None, _GroupTotals]) -> None:
    """Add the figures of each order whose last completion falls in the window and that is still restored."""
    orders = list(orders)
    creations = _creations_by_asset(orders)
    for order in orders:
        if not order.corrective or order.status not in RESTORED_STATES:
            continue
        last = order.completions[-1]
        if not query.window_start <= last.time < query.window_end:
            continue
        group = totals[_order_key(query, order, last.engineer_id, last.time)]
        group.restored += 1
        group.restoration_total += last.time - order.created_at
        for interval in order.intervals:
            if interval.kind == "work":
                group.active_repair_total += interval.end - interval.start
        if order.arrivals == 1 and last.fixed:
            group.first_time_fixes += 1
        if order.asset_id is not None:
            group.repeat_base += 1
            if _has_repeat(creations[order.asset_id], last.time, query.repeat_window):
                group.repeats += 1
        flag = query.sla_met.get(order.work_order_id)
        if flag is None:
            group.sla_unknown += 1
        else:
            group.sla_flagged += 1
            group.sla_met += int(bool(flag))


def _add_reactions(query: KpiQuery, orders: Iterable[OrderHistory], totals: dict[str | None, _GroupTotals]) -> None:
    """Add created-to-first-arrival for each order whose first arrival falls in the window."""
    for order in orders:
        if not order.corrective or order.first_arrival is None:
            continue
        arrived_at, engineer_id = order.first_arrival
        if not query.window_start <= arrived_at < query.window_end:
            continue
        group = totals[_order_key(query, order, engineer_id, arrived_at)]
        group.reacted += 1
        group.reaction_total += arrived_at - order.created_at


def _add_intervals(query: KpiQuery, orders: Iterable[OrderHistory], totals: dict[str | None, _GroupTotals]) -> None:
    """Add travel, on-site and working time clipped to the window, and the available time of each engineer-day."""
    engaged: dict[tuple[str | None, str], list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for order in orders:
        for interval in order.intervals:
            clipped = clip(interval.start, interval.end, query.window_start, query.window_end)
            if clipped is None:
                continue
            for day, start, end in split_by_utc_day(*clipped):
                engaged[(interval.engineer_id, day)].append((start, end))
                if query.group_by is GroupBy.DAY:
                    key = day
                else:
                    key = _order_key(query, order, interval.engineer_id, start)
                group = totals[key]
                if interval.kind == "travel":
                    group.travel += end - start
                else:
                    group.on_site += end - start
                if interval.kind == "work":
                    group.working += end - start

    if query.group_by not in (GroupBy.ENGINEER, GroupBy.DAY):
        return
    for (engineer_id, day), pieces in engaged.items():
        key = engineer_id if query.group_by is GroupBy.ENGINEER else day
        totals[key].available += available_time(engineer_id, pieces, query.available_hours_per_day)


def _add_failures(query: KpiQuery, orders: Iterable[OrderHistory], totals: dict[str | None, _GroupTotals]) -> None:
    """Count the failures created in the window and the gaps between them, in every grouping but engineer.

    A failure happens before any engineer is assigned, so it belongs to no
    engineer group.
    """
    if query.group_by is GroupBy.ENGINEER:
        return
    per_component = query.group_by is GroupBy.COMPONENT
    for failure in failures_in_window(orders, query.window_start, query.window_end, per_component):
        group = totals[_order_key(query, failure.order, None, failure.time)]
        group.failures += 1
        if failure.gap is not None:
            group.failure_gaps += 1
            group.failure_gap_total += failure.gap


def _to_group(query: KpiQuery, key: str | None, totals: _GroupTotals) -> KpiGroup:
    utilisation = None
    if query.group_by in (GroupBy.ENGINEER, GroupBy.DAY):
        utilisation = duration_ratio(totals.working, totals.available)
    return KpiGroup(
        key=key,
        time_to_restoration=mean_duration(totals.restored, totals.restoration_total),
        active_repair_time=mean_duration(totals.restored, totals.active_repair_total),
        reaction_time=mean_duration(totals.reacted, totals.reaction_total),
        first_time_fix=rate(totals.first_time_fixes, totals.restored),
        repeat_visit=rate(totals.repeats, totals.repeat_base),
        sla_compliance=rate(totals.sla_met, totals.sla_flagged),
        sla_unknown=totals.sla_unknown,
        travel_share=duration_ratio(totals.travel, totals.travel + totals.on_site),
        utilisation=utilisation,
        failures=totals.failures,
        time_between_failures=mean_duration(totals.failure_gaps, totals.failure_gap_total),
    )


def compute_kpis(
    events: Iterable[RecordedEvent],
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    group_by: GroupBy | str,
    repeat_window_days: int = 30,
    asset_contracts: Mapping[str, str] | None = None,
    order_models: Mapping[str, str] | None = None,
    sla_met: Mapping[str, bool] | None = None,
    available_hours_per_day: Mapping[str, float] | None = None,
) -> KpiReport:
    """Compute every KPI per group for the window [window_start, window_end).

    `events` are the accepted events of the log, in any order: they are sorted
    by global position. Events after the window still count, because a later
    reopening or cancellation changes which orders are restored and a later
    order on the same asset makes a repeat visit. `asset_contracts` maps asset
    ids to contract ids for orders created without a contract. `order_models`
    maps work-order ids to the model of their asset when the order was created,
    the key of `group_by="asset_model"`. `sla_met` maps
    work-order ids to the SLA engine's met (True) or breached (False) flag.
    `available_hours_per_day` gives engineers' available hours per working day.

    Raises ValueError naming the field and value for invalid parameters, and
    naming the event for a log that breaks the transition table.
    """
    query = build_query(
        window_start=window_start,
        window_end=window_end,
        group_by=group_by,
        repeat_window_days=repeat_window_days,
        asset_contracts=asset_contracts,
        order_models=order_models,
        sla_met=sla_met,
        available_hours_per_day=available_hours_per_day,
    )
    orders = list(replay_orders(events).values())
    totals: dict[str | None, _GroupTotals] = defaultdict(_GroupTotals)
    _add_restorations(query, orders, totals)
    _add_reactions(query, orders, totals)
    _add_intervals(query, orders, totals)
    _add_failures(query, orders, totals)

    keys = sorted(totals, key=lambda key: (key is not None, key or ""))
    return KpiReport(
        window_start=query.window_start,
        window_end=query.window_end,
        group_by=query.group_by.value,
        repeat_window_days=query.repeat_window.days,
        groups=[_to_group(query, key, totals[key]) for key in keys],
    )
