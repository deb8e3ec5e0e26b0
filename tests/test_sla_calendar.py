"""Business calendars: opening hours, holidays, DST days and business-time arithmetic.

Expected instants are literal UTC datetimes worked out by hand; each comment
gives the local wall-clock reading behind them.
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.sla import (
    BusinessCalendar,
    OpeningInterval,
    TwentyFourSeven,
    add_business_duration,
    business_calendar,
    business_duration,
    open_intervals,
)

UTC = dt.UTC
T = dt.time
H = dt.timedelta(hours=1)
MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)
WORKDAYS = range(5)


def utc(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)


def office(time_zone: str, holidays: tuple[dt.date, ...] = ()) -> BusinessCalendar:
    """Monday to Friday, 08:00-17:00 local time."""
    return business_calendar(time_zone, {day: [(T(8), T(17))] for day in WORKDAYS}, holidays)


def sundays(time_zone: str, *intervals: tuple[dt.time, dt.time]) -> BusinessCalendar:
    return business_calendar(time_zone, {SUNDAY: list(intervals)})


BERLIN = office("Europe/Berlin")
NEW_YORK = office("America/New_York")
ALWAYS = TwentyFourSeven()


# --- Opening hours, weekends, holidays ----------------------------------------


def test_weekend_is_skipped():
    # Fri 2024-06-14 15:00 CEST is 13:00 UTC. Two hours remain on Friday (until
    # 17:00 CEST = 15:00 UTC); the other two run from Mon 08:00 CEST (06:00 UTC).
    start = utc(2024, 6, 14, 13)
    due = add_business_duration(BERLIN, start, 4 * H)
    assert due == utc(2024, 6, 17, 8)
    assert business_duration(BERLIN, start, due) == 4 * H
    assert open_intervals(BERLIN, start, due) == [
        (utc(2024, 6, 14, 13), utc(2024, 6, 14, 15)),
        (utc(2024, 6, 17, 6), utc(2024, 6, 17, 8)),
    ]


def test_holiday_is_skipped():
    # Wed 2024-10-02 16:00 CEST is 14:00 UTC: one hour on Wednesday, Thursday
    # 2024-10-03 is a holiday, two hours from Fri 08:00 CEST (06:00 UTC).
    calendar = office("Europe/Berlin", holidays=(dt.date(2024, 10, 3),))
    start = utc(2024, 10, 2, 14)
    assert add_business_duration(calendar, start, 3 * H) == utc(2024, 10, 4, 8)
    # Without the holiday, Thursday 08:00 CEST (06:00 UTC) counts.
    assert add_business_duration(BERLIN, start, 3 * H) == utc(2024, 10, 3, 8)
    assert business_duration(calendar, utc(2024, 10, 2), utc(2024, 10, 5)) == 18 * H


def test_two_intervals_per_day():
    calendar = business_calendar("Europe/Berlin", {MONDAY: [(T(13), T(17)), (T(8), T(12))]})
    # Mon 2024-06-10 11:00 CEST (09:00 UTC): one hour until the 12:00 break,
    # then one hour from 13:00 CEST, so 14:00 CEST = 12:00 UTC.
    assert add_business_duration(calendar, utc(2024, 6, 10, 9), 2 * H) == utc(2024, 6, 10, 12)
    assert business_duration(calendar, utc(2024, 6, 10), utc(2024, 6, 11)) == 8 * H


def test_due_at_closing_time_not_next_opening():
    # Fri 2024-06-14 15:00 CEST plus two hours ends exactly at 17:00 CEST
    # (15:00 UTC), not at Monday's opening.
    assert add_business_duration(BERLIN, utc(2024, 6, 14, 13), 2 * H) == utc(2024, 6, 14, 15)


def test_start_outside_hours_waits_for_opening():
    # Sat 2024-06-15: the hour starts at Mon 08:00 CEST and ends 09:00 CEST (07:00 UTC).
    assert add_business_duration(BERLIN, utc(2024, 6, 15, 10), H) == utc(2024, 6, 17, 7)
    assert business_duration(BERLIN, utc(2024, 6, 15, 10), utc(2024, 6, 16, 10)) == dt.timedelta(0)


def test_zero_duration_returns_start():
    start = utc(2024, 6, 15, 10)
    assert add_business_duration(BERLIN, start, dt.timedelta(0)) == start
    assert business_duration(BERLIN, start, start) == dt.timedelta(0)


def test_touching_intervals_are_merged():
    calendar = business_calendar("Europe/Berlin", {MONDAY: [(T(8), T(12)), (T(12), T(17))]})
    assert open_intervals(calendar, utc(2024, 6, 10), utc(2024, 6, 11)) == [
        (utc(2024, 6, 10, 6), utc(2024, 6, 10, 15)),
    ]


def test_night_shift_across_midnight():
    # Mon 22:00-24:00 and Tue 00:00-06:00 CEST form one shift, 20:00 to 04:00 UTC.
    calendar = business_calendar("Europe/Berlin", {MONDAY: [(T(22), T(0))], TUESDAY: [(T(0), T(6))]})
    assert open_intervals(calendar, utc(2024, 6, 10), utc(2024, 6, 12)) == [
        (utc(2024, 6, 10, 20), utc(2024, 6, 11, 4)),
    ]


def test_input_offset_is_converted_to_utc():
    # 15:00+02:00 is the same instant as 13:00 UTC.
    start = dt.datetime(2024, 6, 14, 15, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert add_business_duration(BERLIN, start, 4 * H) == utc(2024, 6, 17, 8)


def test_twenty_four_seven_counts_every_instant():
    start, end = utc(2024, 6, 14, 13), utc(2024, 6, 17, 8)
    assert open_intervals(ALWAYS, start, end) == [(start, end)]
    assert business_duration(ALWAYS, start, end) == end - start
    assert add_business_duration(ALWAYS, start, 67 * H) == end


def test_calendar_decodes_from_json():
    raw = b"""{"type": "business", "time_zone": "Europe/Berlin",
               "weekly_hours": [[{"start": "08:00:00", "end": "17:00:00"}], [], [], [], [], [], []],
               "holidays": ["2024-06-10"]}"""
    calendar = msgspec.json.decode(raw, type=BusinessCalendar)
    assert calendar.weekly_hours[MONDAY] == (OpeningInterval(T(8), T(17)),)
    assert calendar.holidays == frozenset({dt.date(2024, 6, 10)})
    # Mon 2024-06-10 is a holiday, so the next open hour is Mon 2024-06-17.
    assert add_business_duration(calendar, utc(2024, 6, 10), H) == utc(2024, 6, 17, 7)


# --- DST: 24x7 and business calendars in both zones ---------------------------

DST_CASES = [
    pytest.param(
        # Sat 2024-03-09 23:00 EST; eight hours later the wall clock reads
        # 08:00 EDT because 02:00 jumped to 03:00.
        ALWAYS, utc(2024, 3, 10, 4), 8 * H, utc(2024, 3, 10, 12),
        id="new-york-24x7-dst-start",
    ),
    pytest.param(
        # Sat 2024-11-02 23:00 EDT; eight hours later it is 06:00 EST because
        # 01:00-02:00 ran twice.
        ALWAYS, utc(2024, 11, 3, 3), 8 * H, utc(2024, 11, 3, 11),
        id="new-york-24x7-dst-end",
    ),
    pytest.param(
        # Sat 2024-03-30 23:00 CET; six hours later it is 06:00 CEST.
        ALWAYS, utc(2024, 3, 30, 22), 6 * H, utc(2024, 3, 31, 4),
        id="berlin-24x7-dst-start",
    ),
    pytest.param(
        # Sat 2024-10-26 23:00 CEST; four hours later it is 02:00 CET, the
        # second 02:00 of the night.
        ALWAYS, utc(2024, 10, 26, 21), 4 * H, utc(2024, 10, 27, 1),
        id="berlin-24x7-dst-end",
    ),
    pytest.param(
        # Fri 2024-03-08 16:00 EST (21:00 UTC): one hour on Friday. Monday
        # 08:00 is EDT now (12:00 UTC, not 13:00), one hour more ends 13:00 UTC.
        NEW_YORK, utc(2024, 3, 8, 21), 2 * H, utc(2024, 3, 11, 13),
        id="new-york-business-dst-start",
    ),
    pytest.param(
        # Fri 2024-11-01 16:00 EDT (20:00 UTC): one hour on Friday, then
        # Mon 08:00 EST (13:00 UTC) plus one hour.
        NEW_YORK, utc(2024, 11, 1, 20), 2 * H, utc(2024, 11, 4, 14),
        id="new-york-business-dst-end",
    ),
    pytest.param(
        # Fri 2024-03-29 16:00 CET (15:00 UTC): one hour on Friday, then
        # Mon 2024-04-01 08:00 CEST (06:00 UTC) plus one hour. This calendar
        # lists no Easter holidays.
        BERLIN, utc(2024, 3, 29, 15), 2 * H, utc(2024, 4, 1, 7),
        id="berlin-business-dst-start",
    ),
    pytest.param(
        # Fri 2024-10-25 16:00 CEST (14:00 UTC): one hour on Friday, then
        # Mon 2024-10-28 08:00 CET (07:00 UTC) plus one hour.
        BERLIN, utc(2024, 10, 25, 14), 2 * H, utc(2024, 10, 28, 8),
        id="berlin-business-dst-end",
    ),
]


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), DST_CASES)
def test_due_across_dst_change(calendar, start, duration, expected):
    assert add_business_duration(calendar, start, duration) == expected
    assert business_duration(calendar, start, expected) == duration


@pytest.mark.parametrize(
    ("time_zone", "day", "expected_open", "expected_hours"),
    [
        # The local date starts at 00:00 EST (05:00 UTC) and ends at 00:00 EDT
        # the next day (04:00 UTC).
        ("America/New_York", dt.date(2024, 3, 10), (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)), 23),
        # 00:00 EDT (04:00 UTC) to 00:00 EST (05:00 UTC).
        ("America/New_York", dt.date(2024, 11, 3), (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5)), 25),
        # 00:00 CET (23:00 UTC the day before) to 00:00 CEST (22:00 UTC).
        ("Europe/Berlin", dt.date(2024, 3, 31), (utc(2024, 3, 30, 23), utc(2024, 3, 31, 22)), 23),
        # 00:00 CEST (22:00 UTC the day before) to 00:00 CET (23:00 UTC).
        ("Europe/Berlin", dt.date(2024, 10, 27), (utc(2024, 10, 26, 22), utc(2024, 10, 27, 23)), 25),
    ],
)
def test_whole_local_day_on_dst_change(time_zone, day, expected_open, expected_hours):
    calendar = sundays(time_zone, (T(0), T(0)))
    week_start = dt.datetime.combine(day - dt.timedelta(days=3), T(0), tzinfo=UTC)
    week_end = week_start + dt.timedelta(days=7)
    assert open_intervals(calendar, week_start, week_end) == [expected_open]
    assert business_duration(calendar, week_start, week_end) == expected_hours * H


def test_nonexistent_boundary_opens_when_gap_ends():
    calendar = sundays("America/New_York", (T(2, 30), T(4)))
    # On 2024-03-10 the wall clock jumps from 02:00 EST to 03:00 EDT at 07:00
    # UTC, so 02:30 never happens: the interval opens at 03:00 EDT and closes
    # at 04:00 EDT (08:00 UTC).
    assert open_intervals(calendar, utc(2024, 3, 10), utc(2024, 3, 11)) == [
        (utc(2024, 3, 10, 7), utc(2024, 3, 10, 8)),
    ]
    # A week later both ends exist: 02:30-04:00 EDT is 06:30-08:00 UTC.
    assert open_intervals(calendar, utc(2024, 3, 17), utc(2024, 3, 18)) == [
        (utc(2024, 3, 17, 6, 30), utc(2024, 3, 17, 8)),
    ]


def test_nonexistent_boundary_berlin():
    # On 2024-03-31 Berlin jumps from 02:00 CET to 03:00 CEST at 01:00 UTC,
    # so 02:30-04:00 is open from 03:00 CEST (01:00 UTC) to 04:00 CEST.
    calendar = sundays("Europe/Berlin", (T(2, 30), T(4)))
    assert open_intervals(calendar, utc(2024, 3, 30), utc(2024, 4, 1)) == [
        (utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)),
    ]


def test_interval_inside_gap_is_empty():
    calendar = sundays("America/New_York", (T(2, 10), T(2, 50)), (T(9), T(10)))
    # 02:10-02:50 does not exist on 2024-03-10; only 09:00-10:00 EDT remains.
    assert open_intervals(calendar, utc(2024, 3, 10), utc(2024, 3, 11)) == [
        (utc(2024, 3, 10, 13), utc(2024, 3, 10, 14)),
    ]


def test_add_across_gap():
    # Sunday 01:00-05:00 in New York. On 2024-03-10 the shift starts at 01:00
    # EST (06:00 UTC) and is three hours long. Two hours in, the wall clock
    # reads 04:00 EDT (08:00 UTC).
    calendar = sundays("America/New_York", (T(1), T(5)))
    assert add_business_duration(calendar, utc(2024, 3, 10, 6), 2 * H) == utc(2024, 3, 10, 8)
    assert business_duration(calendar, utc(2024, 3, 10), utc(2024, 3, 11)) == 3 * H


def test_ambiguous_times_count_in_both_occurrences():
    calendar = sundays("America/New_York", (T(0), T(1, 30)))
    # On 2024-11-03 the wall clock runs 00:00-01:59 EDT (04:00-06:00 UTC), then
    # 01:00-01:59 again in EST (06:00-07:00 UTC). 00:00-01:30 is open from
    # 04:00 to 05:30 UTC and again from 06:00 to 06:30 UTC.
    assert open_intervals(calendar, utc(2024, 11, 3), utc(2024, 11, 4)) == [
        (utc(2024, 11, 3, 4), utc(2024, 11, 3, 5, 30)),
        (utc(2024, 11, 3, 6), utc(2024, 11, 3, 6, 30)),
    ]
    # 01:00 EDT (05:00 UTC) to 05:00 EST (10:00 UTC) is five hours.
    longer = sundays("America/New_York", (T(1), T(5)))
    assert business_duration(longer, utc(2024, 11, 3), utc(2024, 11, 4)) == 5 * H


def test_ambiguous_times_berlin():
    # On 2024-10-27 Berlin runs 02:00-02:59 CEST (00:00-01:00 UTC), then
    # 02:00-02:59 CET (01:00-02:00 UTC). 02:30-04:00 is open 00:30-01:00 UTC,
    # then from the second 02:30 (01:30 UTC) to 04:00 CET (03:00 UTC).
    calendar = sundays("Europe/Berlin", (T(2, 30), T(4)))
    assert open_intervals(calendar, utc(2024, 10, 26), utc(2024, 10, 28)) == [
        (utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1)),
        (utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 3)),
    ]


# --- Invalid input ------------------------------------------------------------


def test_naive_start_rejected():
    with pytest.raises(ValueError, match=r"^start: naive datetime 2024-06-10T08:00:00 "):
        business_duration(BERLIN, dt.datetime(2024, 6, 10, 8), utc(2024, 6, 11))


def test_naive_end_rejected():
    with pytest.raises(ValueError, match=r"^end: naive datetime 2024-06-11T00:00:00 "):
        open_intervals(BERLIN, utc(2024, 6, 10), dt.datetime(2024, 6, 11))


def test_naive_start_rejected_by_add():
    with pytest.raises(ValueError, match=r"^start: naive datetime"):
        add_business_duration(ALWAYS, dt.datetime(2024, 6, 10), H)


def test_end_before_start_rejected():
    message = r"^end: 2024-06-10T00:00:00\+00:00 is before start 2024-06-11T00:00:00\+00:00$"
    with pytest.raises(ValueError, match=message):
        business_duration(BERLIN, utc(2024, 6, 11), utc(2024, 6, 10))


def test_negative_duration_rejected():
    with pytest.raises(ValueError, match=r"^duration: must not be negative, got -3600 seconds$"):
        add_business_duration(BERLIN, utc(2024, 6, 10), -H)


def test_unknown_time_zone_rejected():
    with pytest.raises(ValueError, match=r"^time_zone: unknown IANA time zone 'Mars/Olympus_Mons'$"):
        office("Mars/Olympus_Mons")


def test_path_like_time_zone_rejected():
    with pytest.raises(ValueError, match=r"^time_zone: unknown IANA time zone '\.\./etc/passwd'$"):
        office("../etc/passwd")


def test_empty_time_zone_rejected():
    with pytest.raises(ValueError, match=r"^time_zone: expected an IANA time zone name"):
        office("")


def test_overlapping_intervals_rejected():
    with pytest.raises(
        ValueError,
        match=r"^weekly_hours\[0\] \(Monday\): opening intervals overlap: 08:00:00-12:00:00 and 11:00:00-17:00:00$",
    ):
        business_calendar("Europe/Berlin", {MONDAY: [(T(11), T(17)), (T(8), T(12))]})


def test_overlap_with_midnight_end_rejected():
    with pytest.raises(ValueError, match=r"^weekly_hours\[4\] \(Friday\): opening intervals overlap"):
        business_calendar("Europe/Berlin", {FRIDAY: [(T(20), T(0)), (T(22), T(23))]})


def test_interval_end_before_start_rejected():
    with pytest.raises(ValueError, match=r"^end: 08:00:00 is not after start 17:00:00"):
        OpeningInterval(T(17), T(8))


def test_empty_interval_rejected():
    with pytest.raises(ValueError, match=r"^end: 08:00:00 is not after start 08:00:00"):
        OpeningInterval(T(8), T(8))


def test_aware_opening_time_rejected():
    with pytest.raises(ValueError, match=r"^start: 08:00:00\+00:00 carries a time zone"):
        OpeningInterval(T(8, tzinfo=UTC), T(17))


def test_weekly_hours_needs_seven_days():
    with pytest.raises(ValueError, match=r"^weekly_hours: expected 7 entries, Monday first, got 5$"):
        BusinessCalendar(time_zone="Europe/Berlin", weekly_hours=((OpeningInterval(T(8), T(17)),),) * 5)


def test_calendar_without_hours_rejected():
    with pytest.raises(ValueError, match=r"^weekly_hours: no opening interval on any weekday"):
        business_calendar("Europe/Berlin", {})


def test_datetime_holiday_rejected():
    with pytest.raises(ValueError, match=r"^holidays: expected local dates \(datetime.date\), got datetime"):
        office("Europe/Berlin", holidays=(dt.datetime(2024, 10, 3),))


def test_weekday_key_out_of_range_rejected():
    with pytest.raises(ValueError, match=r"^hours: weekday keys are 0 \(Monday\) to 6 \(Sunday\), got 7$"):
        business_calendar("Europe/Berlin", {7: [(T(8), T(17))]})


def test_invalid_json_calendar_rejected():
    raw = b"""{"type": "business", "time_zone": "Europe/Berlin",
               "weekly_hours": [[{"start": "08:00:00", "end": "12:00:00"},
                                 {"start": "11:00:00", "end": "17:00:00"}], [], [], [], [], [], []]}"""
    with pytest.raises(msgspec.ValidationError, match=r"opening intervals overlap"):
        msgspec.json.decode(raw, type=BusinessCalendar)


# --- Properties ---------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Lord Howe Island moves its clocks by 30 minutes; Kolkata has no DST.
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
# Instants from late 2023 to early 2025, which include four DST changes per zone.
INSTANTS = st.integers(min_value=0, max_value=500 * 24 * 60).map(
    lambda minutes: utc(2023, 10, 1) + dt.timedelta(minutes=minutes)
)
DURATIONS = st.integers(min_value=0, max_value=60 * 60).map(lambda minutes: dt.timedelta(minutes=minutes))


@st.composite
def calendars(draw) -> BusinessCalendar:
    hours: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for weekday in range(7):
        # Up to two intervals per day on a half-hour grid, 0 meaning midnight.
        bounds = sorted(draw(st.sets(st.integers(min_value=0, max_value=48), max_size=4)))
        if len(bounds) % 2:
            bounds = bounds[:-1]
        hours[weekday] = [
            (_grid_time(bounds[i]), _grid_time(bounds[i + 1])) for i in range(0, len(bounds), 2)
        ]
    if not any(hours.values()):
        hours[MONDAY] = [(T(8), T(17))]
    holidays = draw(st.sets(INSTANTS.map(lambda instant: instant.date()), max_size=5))
    return business_calendar(draw(st.sampled_from(ZONES)), hours, holidays)


def _grid_time(slot: int) -> dt.time:
    return T(0) if slot == 48 else T(slot // 2, 30 * (slot % 2))


@PROPERTY_SETTINGS
@given(calendar=calendars(), start=INSTANTS, duration=DURATIONS)
def test_property_add_then_measure(calendar, start, duration):
    due = add_business_duration(calendar, start, duration)
    assert business_duration(calendar, start, due) == duration
    if duration:
        # The due instant is the earliest one: a microsecond earlier is short.
        assert business_duration(calendar, start, due - dt.timedelta(microseconds=1)) < duration


@PROPERTY_SETTINGS
@given(calendar=calendars(), first=INSTANTS, second=INSTANTS, third=INSTANTS)
def test_property_duration_is_additive(calendar, first, second, third):
    start, middle, end = sorted((first, second, third))
    whole = business_duration(calendar, start, end)
    assert whole == business_duration(calendar, start, middle) + business_duration(calendar, middle, end)
    assert whole == sum((b - a for a, b in open_intervals(calendar, start, end)), dt.timedelta(0))


@PROPERTY_SETTINGS
@given(time_zone=st.sampled_from(ZONES), first=INSTANTS, second=INSTANTS)
def test_property_all_day_calendar_counts_every_instant(time_zone, first, second):
    # Every instant has exactly one local date, so a calendar open all day on
    # every day counts real elapsed time, DST days included.
    calendar = business_calendar(time_zone, {day: [(T(0), T(0))] for day in range(7)})
    start, end = sorted((first, second))
    assert business_duration(calendar, start, end) == end - start
    assert business_duration(ALWAYS, start, end) == end - start
