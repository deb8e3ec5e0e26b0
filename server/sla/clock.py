"""One SLA clock: business time counted in running windows, minus pauses, against a target.

A clock runs in one or more windows (one per cycle, or several when a
reopened order continues its resolution clock) and stops for pauses. Its
counted time is the business time of the calendar that lies inside a window
and outside every pause. A mark (a warning threshold or the target itself) is
reached at the earliest instant at which the counted time equals the mark.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence

import msgspec

from .calendar import Calendar, iter_open_intervals
from .intervals import UNBOUNDED, Interval, clip_end, intersect, merge, subtract


class ClockKind(str, enum.Enum):
    """Target that a clock measures."""

    RESPONSE = "response"
    RESOLUTION = "resolution"


class ClockState(str, enum.Enum):
    """State of a clock at the evaluation instant."""

    RUNNING = "running"
    PAUSED = "paused"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    MET = "met"
    CANCELLED = "cancelled"


class ClockStop(str, enum.Enum):
    """Reason a clock's last window ended."""

    DONE = "done"
    """The target event happened (`arrived` for response, `completed` for resolution)."""
    CANCELLED = "cancelled"


class CrossingKind(str, enum.Enum):
    WARNING = "warning"
    BREACH = "breach"


class Crossing(msgspec.Struct, frozen=True, kw_only=True):
    """A warning threshold or a due instant that a clock ran past."""

    cycle: int
    clock: ClockKind
    kind: CrossingKind
    threshold: float
    """Fraction of the target: a warning threshold, or 1.0 for a breach."""
    crossed_at: dt.datetime

    @property
    def key(self) -> str:
        """Identity of the crossing for record-once bookkeeping, such as `1/resolution/warning/0.75`.

        The key does not contain `crossed_at`, because a late event can move
        the instant of a crossing that was already recorded.
        """
        return f"{self.cycle}/{self.clock.value}/{self.kind.value}/{self.threshold!r}"


class ClockResult(msgspec.Struct, frozen=True, kw_only=True):
    """A clock evaluated at an instant."""

    kind: ClockKind
    state: ClockState
    started_at: dt.datetime
    stopped_at: dt.datetime | None
    """End of the last window when the clock is stopped, else None."""
    target: dt.timedelta
    due_at: dt.datetime | None
    """None while a pause that has not ended holds the clock before it reaches the target."""
    elapsed: dt.timedelta
    """Business time counted so far."""
    paused: dt.timedelta
    """Business time inside windows that pauses removed."""
    crossings: tuple[Crossing, ...]


def evaluate_clock(
    *,
    kind: ClockKind,
    cycle: int,
    calendar: Calendar,
    target: dt.timedelta,
    warning_thresholds: Sequence[float],
    windows: Sequence[Interval],
    stop: ClockStop | None,
    pauses: Sequence[Interval],
    now: dt.datetime,
) -> ClockResult:
    """Evaluate one clock at `now`.

    `windows` are sorted, disjoint UTC intervals, and only the last one may
    end at `UNBOUNDED`, which it must when `stop` is None (the clock runs).
    `pauses` may overlap and may end at `UNBOUNDED` when their hold has not
    ended. Nothing in the inputs may lie after `now`, except those unbounded ends.
    """
    windows = list(windows)
    stopped = stop is not None
    clock_end = windows[-1][1] if stopped else now
    if not stopped and windows[-1][1] != UNBOUNDED:
        raise ValueError("windows: the last window of a running clock must end at UNBOUNDED")

    # Marks are found on the counted time extended into the future. The last
    # window runs on without end, and once the clock has stopped no pause
    # follows. While the clock runs, a pause that has not ended stops it indefinitely.
    extended_windows = windows[:-1] + [(windows[-1][0], UNBOUNDED)]
    pause_set = merge(pauses)
    if stopped:
        pause_set = clip_end(pause_set, clock_end)
    counted = subtract(extended_windows, pause_set)
    paused_set = intersect(extended_windows, pause_set)

    fractions = [*warning_thresholds, 1.0]
    marks = _find_mark_instants(calendar, counted, [target * fraction for fraction in fractions])
    crossings = tuple(
        Crossing(
            cycle=cycle,
            clock=kind,
            kind=CrossingKind.BREACH if fraction == 1.0 else CrossingKind.WARNING,
            threshold=fraction,
            crossed_at=instant,
        )
        for fraction, instant in zip(fractions, marks)
        # A mark is crossed when the clock ran past it, so stopping exactly
        # on the due instant is met, not breached.
        if instant is not None and instant < clock_end
    )
    due_at = marks[-1]

    if stop is ClockStop.CANCELLED:
        state = ClockState.CANCELLED
    elif stop is ClockStop.DONE:
        assert due_at is not None  # a stopped clock has no unbounded pause
        state = ClockState.MET if clock_end <= due_at else ClockState.BREACHED
    elif any(crossing.kind is CrossingKind.BREACH for crossing in crossings):
        state = ClockState.BREACHED
    elif any(start <= now < end for start, end in paused_set):
        state = ClockState.PAUSED
    elif crossings:
        state = ClockState.AT_RISK
    else:
        state = ClockState.RUNNING

    return ClockResult(
        kind=kind,
        state=state,
        started_at=windows[0][0],
        stopped_at=clock_end if stopped else None,
        target=target,
        due_at=due_at,
        elapsed=_business_time(calendar, clip_end(counted, clock_end)),
        paused=_business_time(calendar, clip_end(paused_set, clock_end)),
        crossings=crossings,
    )


def _business_time(calendar: Calendar, intervals: list[Interval]) -> dt.timedelta:
    total = dt.timedelta(0)
    for start, end in intervals:
        for open_start, open_end in iter_open_intervals(calendar, start):
            if open_start >= end:
                break
            total += min(open_end, end) - open_start
    return total


def _find_mark_instants(
    calendar: Calendar, counted: list[Interval], marks: list[dt.timedelta]
) -> list[dt.datetime | None]:
    """Return, for each mark in ascending order, the earliest instant the counted time reaches it.

    A mark that the counted time never reaches (the counted intervals are
    bounded by a pause without end) gets None.
    """
    instants: list[dt.datetime | None] = [None] * len(marks)
    accumulated = dt.timedelta(0)
    index = 0
    for start, end in counted:
        for open_start, open_end in iter_open_intervals(calendar, start):
            if open_start >= end:
                break
            length = min(open_end, end) - open_start
            while index < len(marks) and accumulated + length >= marks[index]:
                instants[index] = open_start + (marks[index] - accumulated)
                index += 1
            if index == len(marks):
                return instants
            accumulated += length
    return instants
