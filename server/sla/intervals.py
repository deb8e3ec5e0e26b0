"""Half-open UTC intervals [start, end) and set operations on sorted lists of them.

An interval that has no end yet (a running clock, a hold not yet resumed) ends
at `UNBOUNDED`, so every interval can be compared and clipped the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

UNBOUNDED = dt.datetime.max.replace(tzinfo=dt.UTC)
"""End of an interval that is still open."""

Interval = tuple[dt.datetime, dt.datetime]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort intervals and join those that overlap or touch; empty intervals are dropped."""
    merged: list[Interval] = []
    for start, end in sorted(interval for interval in intervals if interval[0] < interval[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(first: list[Interval], second: list[Interval]) -> list[Interval]:
    """Return the instants in both lists; each list must be sorted and non-overlapping."""
    result: list[Interval] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def subtract(base: list[Interval], removed: list[Interval]) -> list[Interval]:
    """Return the instants of `base` outside `removed`; both must be sorted and non-overlapping."""
    result: list[Interval] = []
    j = 0
    for start, end in base:
        cursor = start
        while j < len(removed) and removed[j][1] <= cursor:
            j += 1
        k = j
        while k < len(removed) and removed[k][0] < end:
            if removed[k][0] > cursor:
                result.append((cursor, removed[k][0]))
            cursor = max(cursor, removed[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def clip_end(intervals: list[Interval], end: dt.datetime) -> list[Interval]:
    """Return the parts of sorted intervals that lie before `end`."""
    return [(start, min(stop, end)) for start, stop in intervals if start < end]
