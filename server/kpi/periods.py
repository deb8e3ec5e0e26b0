"""Clipping of time intervals to the report window and to UTC days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

ONE_DAY = dt.timedelta(days=1)


def utc_day(instant: dt.datetime) -> str:
    """Return the UTC calendar date of an aware instant as `YYYY-MM-DD`."""
    return instant.astimezone(dt.timezone.utc).date().isoformat()


def clip(
    start: dt.datetime, end: dt.datetime, window_start: dt.datetime, window_end: dt.datetime
) -> tuple[dt.datetime, dt.datetime] | None:
    """Return the part of [start, end) inside [window_start, window_end), or None when it is empty."""
    clipped_start = max(start, window_start)
    clipped_end = min(end, window_end)
    if clipped_start >= clipped_end:
        return None
    return clipped_start, clipped_end


def split_by_utc_day(start: dt.datetime, end: dt.datetime) -> Iterator[tuple[str, dt.datetime, dt.datetime]]:
    """Yield (UTC date, piece start, piece end) for each UTC day that [start, end) touches."""
    piece_start = start.astimezone(dt.timezone.utc)
    end = end.astimezone(dt.timezone.utc)
    while piece_start < end:
        midnight = dt.datetime.combine(piece_start.date(), dt.time(), tzinfo=dt.timezone.utc) + ONE_DAY
        piece_end = min(midnight, end)
        yield piece_start.date().isoformat(), piece_start, piece_end
        piece_start = piece_end
