"""Result types of the KPI engine: one figure per KPI, carrying the counts behind it.

Every mean, rate and ratio comes with the count or totals it was computed
from, so figures of several groups or windows can be merged with
`merge_groups` and checked by hand. Durations are in seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import msgspec


class MeanDuration(msgspec.Struct, frozen=True, kw_only=True):
    """Mean of one duration per order: `total_seconds / count`, None when `count` is 0."""

    count: int
    total_seconds: float
    mean_seconds: float | None


class Rate(msgspec.Struct, frozen=True, kw_only=True):
    """Share of orders that meet a condition: `hits / count`, None when `count` is 0."""

    hits: int
    count: int
    rate: float | None


class DurationRatio(msgspec.Struct, frozen=True, kw_only=True):
    """Ratio of two summed durations, None when `denominator_seconds` is 0."""

    numerator_seconds: float
    denominator_seconds: float
    ratio: float | None


class KpiGroup(msgspec.Struct, frozen=True, kw_only=True):
    """All figures of one group: an engineer id, asset id, contract id, UTC date (`YYYY-MM-DD`), component or asset model.

    `key` is None for orders that have no asset, contract, component or
    asset model when grouped by that field. `utilisation` is None for asset and contract groups,
    because available time belongs to engineers. `sla_unknown` counts the
    restored orders for which the caller supplied no SLA flag.
    """

    key: str | None
    time_to_restoration: MeanDuration
    active_repair_time: MeanDuration
    reaction_time: MeanDuration
    first_time_fix: Rate
    repeat_visit: Rate
    sla_compliance: Rate
    sla_unknown: int
    travel_share: DurationRatio
    utilisation: DurationRatio | None
    failures: int
    """Corrective orders created in the window and not cancelled; always 0 in engineer groups."""
    time_between_failures: MeanDuration
    """Gaps between consecutive failures of one asset, both in the window; count 0 in engineer groups."""


class KpiReport(msgspec.Struct, frozen=True, kw_only=True):
    """Figures per group for the window [`window_start`, `window_end`), groups sorted by key with None first."""

    window_start: dt.datetime
    window_end: dt.datetime
    group_by: str
    repeat_window_days: int
    groups: list[KpiGroup]


def mean_duration(count: int, total: dt.timedelta) -> MeanDuration:
    seconds = total.total_seconds()
    return MeanDuration(count=count, total_seconds=seconds, mean_seconds=seconds / count if count else None)


def rate(hits: int, count: int) -> Rate:
    return Rate(hits=hits, count=count, rate=hits / count if count else None)


def duration_ratio(numerator: dt.timedelta, denominator: dt.timedelta) -> DurationRatio:
    numerator_seconds = numerator.total_seconds()
    denominator_seconds = denominator.total_seconds()
    ratio = numerator_seconds / denominator_seconds if denominator_seconds else None
    return DurationRatio(
        numerator_seconds=numerator_seconds, denominator_seconds=denominator_seconds, ratio=ratio
    )


def _merge_means(figures: list[MeanDuration]) -> MeanDuration:
    count = sum(figure.count for figure in figures)
    total = sum(figure.total_seconds for figure in figures)
    return MeanDuration(count=count, total_seconds=total, mean_seconds=total / count if count else None)


def _merge_rates(figures: list[Rate]) -> Rate:
    return rate(sum(figure.hits for figure in figures), sum(figure.count for figure in figures))


def _merge_ratios(figures: list[DurationRatio]) -> DurationRatio:
    numerator = sum(figure.numerator_seconds for figure in figures)
    denominator = sum(figure.denominator_seconds for figure in figures)
    return DurationRatio(
        numerator_seconds=numerator,
        denominator_seconds=denominator,
        ratio=numerator / denominator if denominator else None,
    )


def merge_groups(groups: Iterable[KpiGroup], key: str | None) -> KpiGroup:
    """Combine groups into one group named `key` by adding their counts and totals.

    Merging the groups of one report is exact, because each order and each
    second of an interval counts in one group only. Reports over windows that
    do not overlap merge exactly too, except for available time on a day that
    a window boundary cuts. `utilisation` is None unless every merged group
    has it. Totals become float sums, so a merged mean may
    differ from a directly computed one in the last bits.
    """
    items = list(groups)
    utilisations = [group.utilisation for group in items]
    merged_utilisation = None
    if items and all(figure is not None for figure in utilisations):
        merged_utilisation = _merge_ratios([figure for figure in utilisations if figure is not None])
    return KpiGroup(
        key=key,
        time_to_restoration=_merge_means([group.time_to_restoration for group in items]),
        active_repair_time=_merge_means([group.active_repair_time for group in items]),
        reaction_time=_merge_means([group.reaction_time for group in items]),
        first_time_fix=_merge_rates([group.first_time_fix for group in items]),
        repeat_visit=_merge_rates([group.repeat_visit for group in items]),
        sla_compliance=_merge_rates([group.sla_compliance for group in items]),
        sla_unknown=sum(group.sla_unknown for group in items),
        travel_share=_merge_ratios([group.travel_share for group in items]),
        utilisation=merged_utilisation,
        failures=sum(group.failures for group in items),
        time_between_failures=_merge_means([group.time_between_failures for group in items]),
    )
