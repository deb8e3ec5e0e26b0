"""Available time of one engineer on one UTC day, the denominator of utilisation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence


def available_time(
    engineer_id: str | None,
    engaged_pieces: Sequence[tuple[dt.datetime, dt.datetime]],
    available_hours_per_day: Mapping[str, float],
) -> dt.timedelta:
    """Return the engineer's available time on a day in which they have `engaged_pieces`.

    The pieces are the engineer's travel, on-site and work intervals of that
    UTC day, already clipped to the day and the window. When the caller
    supplies hours for this engineer, the day counts those hours in full.
    Otherwise it counts the span from the first piece's start to the last
    piece's end, so idle time before the first trip and after the last job
    is not available time and utilisation reads high.
    """
    if engineer_id is not None and engineer_id in available_hours_per_day:
        # NOTE: a window that cuts a day short still counts the full hours of that day.
        return dt.timedelta(hours=available_hours_per_day[engineer_id])
    first_start = min(start for start, _ in engaged_pieces)
    last_end = max(end for _, end in engaged_pieces)
    return last_end - first_start
