"""Business calendars and business-time arithmetic on UTC instants.

A `BusinessCalendar` lists weekly opening hours as local wall-clock intervals
in the site's IANA time zone, plus holidays as local dates. It is expanded one
local date at a time: an instant is open when its local date is not a holiday
and its local wall-clock time lies in an opening interval of that date's
weekday. This single rule settles every DST case:

- a day is 23 or 25 hours long, and opening hours stay at wall-clock times;
- an interval boundary that does not exist (spring-forward gap) is reached at
  the instant the gap ends, so the hours inside the gap are simply missing;
- wall-clock times that occur twice (fall-back overlap) are open in both
  occurrences when they lie inside an opening interval.

`TwentyFourSeven` counts every instant, so business time equals elapsed time.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ._checks import require_aware
from .intervals import UNBOUNDED, Interval, merge

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MIDNIGHT = dt.time(0)

# Every UTC offset in the tz database lies within +-26 hours. The extremes are
# about -16 and +15 hours, in local mean times of the 1800s. So the instants of
# one local date lie between its midnight minus 26 hours and the next midnight
# plus 26 hours, both read as UTC.
_MAX_OFFSET = dt.timedelta(hours=26)
# NOTE: offset changes are found by sampling every 30 minutes and then
# bisecting to the second. Two changes less than 30 minutes apart that cancel
# each other out would be missed; no zone in the tz database has one.
_OFFSET_SAMPLE_STEP = dt.timedelta(minutes=30)
_ONE_SECOND = dt.timedelta(seconds=1)
_ONE_DAY = dt.timedelta(days=1)


class OpeningInterval(msgspec.Struct, frozen=True):
    """Opening hours [start, end) of one weekday in local wall-clock time.

    An `end` of 00:00 means midnight at the end of the day, so 00:00-00:00 is
    the whole day. An interval cannot pass midnight: split a night shift into
    22:00-00:00 on one weekday and 00:00-06:00 on the next.
    """

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        for field, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, dt.time):
                raise ValueError(f"{field}: expected a datetime.time, got {value!r}")
            if value.tzinfo is not None:
                raise ValueError(
                    f"{field}: {value.isoformat()} carries a time zone; opening hours are local "
                    "wall-clock times and the calendar's time_zone applies"
                )
        if self.end != MIDNIGHT and self.end <= self.start:
            raise ValueError(
                f"end: {self.end.isoformat()} is not after start {self.start.isoformat()}; "
                "use 00:00 for midnight and split intervals that pass midnight"
            )

    def wall_bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """Return the naive local datetimes where this interval starts and ends on `day`."""
        start = dt.datetime.combine(day, self.start)
        if self.end == MIDNIGHT:
            end = dt.datetime.combine(day + _ONE_DAY, MIDNIGHT)
        else:
            end = dt.datetime.combine(day, self.end)
        return start, end


class BusinessCalendar(msgspec.Struct, frozen=True, kw_only=True, tag="business"):
    """Weekly opening hours and holidays of a site, in its IANA time zone."""

    time_zone: str
    weekly_hours: tuple[tuple[OpeningInterval, ...], ...]
    """Seven entries, Monday first (the order of `date.weekday()`)."""
    holidays: frozenset[dt.date] = frozenset()
    """Local dates on which the site is closed all day."""

    def __post_init__(self) -> None:
        _validate_time_zone(self.time_zone)
        if len(self.weekly_hours) != 7:
            raise ValueError(
                f"weekly_hours: expected 7 entries, Monday first, got {len(self.weekly_hours)}"
            )
        for weekday, intervals in enumerate(self.weekly_hours):
            _validate_day(weekday, intervals)
        if not any(self.weekly_hours):
            raise ValueError("weekly_hours: no opening interval on any weekday, so no business time ever passes")
        for holiday in self.holidays:
            if isinstance(holiday, dt.datetime) or not isinstance(holiday, dt.date):
                raise ValueError(f"holidays: expected local dates (datetime.date), got {holiday!r}")


class TwentyFourSeven(msgspec.Struct, frozen=True, tag="24x7"):
    """A calendar in which every instant is business time."""


Calendar = BusinessCalendar | TwentyFourSeven


def business_calendar(
    time_zone: str,
    hours: Mapping[int, Iterable[tuple[dt.time, dt.time]]],
    holidays: Iterable[dt.date] = (),
) -> BusinessCalendar:
    """Build a `BusinessCalendar` from opening hours keyed by weekday (0 is Monday)."""
    for weekday in hours:
        if weekday not in range(7):
            raise ValueError(f"hours: weekday keys are 0 (Monday) to 6 (Sunday), got {weekday!r}")
    weekly_hours = tuple(
        tuple(OpeningInterval(start, end) for start, end in hours.get(weekday, ())) for weekday in range(7)
    )
    return BusinessCalendar(time_zone=time_zone, weekly_hours=weekly_hours, holidays=frozenset(holidays))


def iter_open_intervals(calendar: Calendar, start: dt.datetime) -> Iterator[Interval]:
    """Yield the open intervals of `calendar` from `start` on, in UTC and in order, without end.

    The first interval is clipped to `start`. Intervals may touch (an interval
    ending at midnight and the next day's one starting at midnight); callers
    that need maximal intervals use `open_intervals`.
    """
    start = require_aware("start", start)
    if isinstance(calendar, TwentyFourSeven):
        yield start, UNBOUNDED
        return
    if not isinstance(calendar, BusinessCalendar):
        raise TypeError(f"calendar: expected BusinessCalendar or TwentyFourSeven, got {type(calendar).__name__}")

    # The instants of local date `day` all lie after its midnight read as UTC
    # minus _MAX_OFFSET. So once a date is expanded, every interval that starts
    # before the next date's bound is final and can be yielded in order.
    # Intervals of different local dates never overlap.
    day = start.date() - 3 * _ONE_DAY
    pending: list[Interval] = []
    while True:
        pending.extend(_day_intervals(calendar, day))
        day += _ONE_DAY
        bound = dt.datetime.combine(day, MIDNIGHT, tzinfo=dt.UTC) - _MAX_OFFSET
        pending.sort()
        ready = [interval for interval in pending if interval[0] < bound]
        pending = pending[len(ready) :]
        for interval_start, interval_end in ready:
            if interval_end > start:
                yield max(interval_start, start), interval_end


def open_intervals(calendar: Calendar, start: dt.datetime, end: dt.datetime) -> list[Interval]:
    """Return the maximal open intervals of `calendar` within [start, end), in UTC."""
    start, end = _require_span(start, end)
    pieces: list[Interval] = []
    for interval_start, interval_end in iter_open_intervals(calendar, start):
        if interval_start >= end:
            break
        pieces.append((interval_start, min(interval_end, end)))
    return merge(pieces)


def business_duration(calendar: Calendar, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """Return the business time of `calendar` between two instants."""
    start, end = _require_span(start, end)
    total = dt.timedelta(0)
    for interval_start, interval_end in iter_open_intervals(calendar, start):
        if interval_start >= end:
            break
        total += min(interval_end, end) - interval_start
    return total


def add_business_duration(calendar: Calendar, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
    """Return the earliest instant at which `duration` of business time has passed since `start`.

    When the duration runs out exactly at closing time, the result is the
    closing instant, not the next opening. A zero duration returns `start`.
    """
    start = require_aware("start", start)
    if not isinstance(duration, dt.timedelta):
        raise ValueError(f"duration: expected a datetime.timedelta, got {duration!r}")
    if duration < dt.timedelta(0):
        raise ValueError(f"duration: must not be negative, got {duration.total_seconds():g} seconds")
    if duration == dt.timedelta(0):
        return start
    remaining = duration
    for interval_start, interval_end in iter_open_intervals(calendar, start):
        length = interval_end - interval_start
        if length >= remaining:
            return interval_start + remaining
        remaining -= length
    raise AssertionError("iter_open_intervals ended, but a calendar is open on at least one weekday")


def _require_span(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    start = require_aware("start", start)
    end = require_aware("end", end)
    if end < start:
        raise ValueError(f"end: {end.isoformat()} is before start {start.isoformat()}")
    return start, end


def _validate_time_zone(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"time_zone: expected an IANA time zone name such as 'Europe/Berlin', got {key!r}")
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"time_zone: unknown IANA time zone {key!r}") from exc


def _validate_day(weekday: int, intervals: tuple[OpeningInterval, ...]) -> None:
    field = f"weekly_hours[{weekday}] ({WEEKDAY_NAMES[weekday]})"
    for interval in intervals:
        if not isinstance(interval, OpeningInterval):
            raise ValueError(f"{field}: expected OpeningInterval values, got {interval!r}")
    ordered = sorted(intervals, key=lambda interval: interval.start)
    for earlier, later in zip(ordered, ordered[1:]):
        earlier_end = earlier.wall_bounds(dt.date.min)[1]
        if earlier_end > dt.datetime.combine(dt.date.min, later.start):
            raise ValueError(
                f"{field}: opening intervals overlap: "
                f"{earlier.start.isoformat()}-{earlier.end.isoformat()} and "
                f"{later.start.isoformat()}-{later.end.isoformat()}"
            )


@functools.lru_cache(maxsize=8192)
def _day_intervals(calendar: BusinessCalendar, day: dt.date) -> tuple[Interval, ...]:
    """Return the UTC instants whose local date is `day` and whose wall-clock time is open."""
    if day in calendar.holidays:
        return ()
    opening = calendar.weekly_hours[day.weekday()]
    if not opening:
        return ()
    result: list[Interval] = []
    for piece_start, piece_end, offset in _offset_pieces(calendar.time_zone, day):
        # Within a piece, wall time = UTC + offset, so the wall interval
        # [wall_start, wall_end) maps to [wall_start - offset, wall_end - offset).
        for interval in opening:
            wall_start, wall_end = interval.wall_bounds(day)
            start = max(piece_start, wall_start - offset)
            end = min(piece_end, wall_end - offset)
            if start < end:
                result.append((start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC)))
    return tuple(merge(result))


@functools.lru_cache(maxsize=8192)
def _offset_pieces(time_zone: str, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime, dt.timedelta], ...]:
    """Split the UTC span around local date `day` into pieces of constant UTC offset.

    Datetimes here are naive UTC. Each piece is (start, end, offset).
    """
    zone = ZoneInfo(time_zone)
    span_start = dt.datetime.combine(day, MIDNIGHT) - _MAX_OFFSET
    span_end = dt.datetime.combine(day + _ONE_DAY, MIDNIGHT) + _MAX_OFFSET
    pieces = []
    piece_start = span_start
    offset = _utc_offset(zone, span_start)
    cursor = span_start
    while cursor < span_end:
        probe = min(cursor + _OFFSET_SAMPLE_STEP, span_end)
        if _utc_offset(zone, probe) == offset:
            cursor = probe
            continue
        change = _first_second_with_other_offset(zone, cursor, probe, offset)
        pieces.append((piece_start, change, offset))
        piece_start = cursor = change
        offset = _utc_offset(zone, change)
    pieces.append((piece_start, span_end, offset))
    return tuple(pieces)


def _utc_offset(zone: ZoneInfo, naive_utc: dt.datetime) -> dt.timedelta:
    offset = naive_utc.replace(tzinfo=dt.UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _first_second_with_other_offset(
    zone: ZoneInfo, low: dt.datetime, high: dt.datetime, offset: dt.timedelta
) -> dt.datetime:
    # Bisect on whole seconds: `low` has `offset` and `high` does not. Offset
    # changes in the tz database happen on whole seconds.
    while high - low > _ONE_SECOND:
        middle = low + dt.timedelta(seconds=(high - low) // _ONE_SECOND // 2)
        if _utc_offset(zone, middle) == offset:
            low = middle
        else:
            high = middle
    return high
