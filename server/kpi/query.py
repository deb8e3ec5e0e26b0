"""Validated parameters of one KPI computation."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping

import msgspec


class GroupBy(str, enum.Enum):
    """Dimension that splits the figures into groups."""

    ENGINEER = "engineer"
    ASSET = "asset"
    CONTRACT = "contract"
    DAY = "day"
    COMPONENT = "component"
    ASSET_MODEL = "asset_model"


class KpiQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Window, grouping and caller-supplied inputs, checked by `build_query`."""

    window_start: dt.datetime
    window_end: dt.datetime
    group_by: GroupBy
    repeat_window: dt.timedelta
    asset_contracts: Mapping[str, str]
    order_models: Mapping[str, str]
    sla_met: Mapping[str, bool]
    available_hours_per_day: Mapping[str, float]


def _require_aware(field: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{field} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(dt.timezone.utc)


def _parse_group_by(value: object) -> GroupBy:
    try:
        return GroupBy(value)
    except ValueError:
        choices = ", ".join(member.value for member in GroupBy)
        raise ValueError(f"group_by must be one of {choices}, got {value!r}") from None


def _check_hours(available_hours_per_day: Mapping[str, float]) -> None:
    for engineer_id, hours in available_hours_per_day.items():
        valid = isinstance(hours, (int, float)) and not isinstance(hours, bool) and math.isfinite(hours)
        if not valid or not 0 <= hours <= 24:
            raise ValueError(
                f"available_hours_per_day[{engineer_id!r}] must be a number of hours from 0 to 24, got {hours!r}"
            )


def build_query(
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    group_by: GroupBy | str,
    repeat_window_days: int = 30,
    asset_contracts: Mapping[str, str] | None = None,
    order_models: Mapping[str, str] | None = None,
    sla_met: Mapping[str, bool] | None = None,
    available_hours_per_day: Mapping[str, float] | None = None,
) -> KpiQuery:
    """Check the parameters and raise ValueError naming the first invalid field and its value."""
    start = _require_aware("window_start", window_start)
    end = _require_aware("window_end", window_end)
    if start >= end:
        raise ValueError(
            f"window_start must be before window_end, got window_start={start.isoformat()} "
            f"and window_end={end.isoformat()}"
        )
    grouping = _parse_group_by(group_by)
    if isinstance(repeat_window_days, bool) or not isinstance(repeat_window_days, int) or repeat_window_days < 1:
        raise ValueError(f"repeat_window_days must be a whole number of days, at least 1, got {repeat_window_days!r}")
    hours = available_hours_per_day or {}
    _check_hours(hours)
    return KpiQuery(
        window_start=start,
        window_end=end,
        group_by=grouping,
        repeat_window=dt.timedelta(days=repeat_window_days),
        asset_contracts=asset_contracts or {},
        order_models=order_models or {},
        sla_met=sla_met or {},
        available_hours_per_day=hours,
    )
