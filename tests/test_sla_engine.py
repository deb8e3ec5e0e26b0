"""SLA evaluation of a work order's events: due instants, pauses, states, crossings, reopen.

Unless a test states otherwise, the calendar is Berlin, Monday to Friday
08:00-17:00 local time. In June 2024 Berlin is on CEST (UTC+2), so a working
day is 06:00-15:00 UTC. P1 has a 4-hour response and an 8-hour resolution
target. Expected instants are literal UTC datetimes worked out by hand.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.sla import (
    ClockKind,
    ClockState,
    CrossingKind,
    PriorityTargets,
    ReopenMode,
    SlaEvent,
    SlaPolicy,
    TwentyFourSeven,
    business_calendar,
    business_duration,
    evaluate_sla,
)
from shared_schema import RecordedEvent
from shared_schema.payloads import HoldReason, Priority

UTC = dt.UTC
T = dt.time
H = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
MICROSECOND = dt.timedelta(microseconds=1)

BERLIN_OFFICE = business_calendar(
    "Europe/Berlin", {day: [(T(8), T(17))] for day in range(5)}, holidays=[dt.date(2024, 10, 3)]
)
NEW_YORK_OFFICE = business_calendar("America/New_York", {day: [(T(8), T(17))] for day in range(5)})


def targets(response_hours: int, resolution_hours: int) -> PriorityTargets:
    return PriorityTargets(response=response_hours * H, resolution=resolution_hours * H)


TARGETS = {
    Priority.P1: targets(4, 8),
    Priority.P2: targets(8, 16),
    Priority.P3: targets(16, 40),
    Priority.P4: targets(40, 80),
}
POLICY = SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS)
CONTINUE_POLICY = SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, reopen=ReopenMode.CONTINUE)


def utc(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=UTC)


class History:
    """Builds a work order's events with stream versions in recording order."""

    def __init__(self) -> None:
        self.events: list[SlaEvent] = []

    def add(self, event_type: str, at: dt.datetime, **fields) -> History:
        self.events.append(SlaEvent(sequence=len(self.events) + 1, type=event_type, effective_time=at, **fields))
        return self

    def created(self, at: dt.datetime, priority: Priority = Priority.P1) -> History:
        return self.add("created", at, priority=priority)

    def hold(self, at: dt.datetime, reason: HoldReason) -> History:
        return self.add("hold_started", at, hold_reason=reason)

    def on_site(self, at: dt.datetime) -> History:
        """Add `arrived` and `work_started` at the same instant."""
        return self.add("arrived", at).add("work_started", at)


def evaluate(history: History, now: dt.datetime, policies=POLICY):
    return evaluate_sla(history.events, policies, now)


# --- Due instants and states --------------------------------------------------


def test_running_clock_states_over_time():
    # Created Mon 2024-06-10 10:00 CEST (08:00 UTC). Response: 4 hours, due
    # 14:00 CEST = 12:00 UTC; warnings at 2 h (10:00 UTC) and 3 h (11:00 UTC).
    # Resolution: 7 hours on Monday until 15:00 UTC, 1 hour from Tue 06:00 UTC.
    history = History().created(utc(2024, 6, 10, 8))

    early = evaluate(history, utc(2024, 6, 10, 9)).current
    assert early.response.state is ClockState.RUNNING
    assert early.response.due_at == utc(2024, 6, 10, 12)
    assert early.response.elapsed == H
    assert early.response.crossings == ()
    assert early.resolution.due_at == utc(2024, 6, 11, 7)

    warned = evaluate(history, utc(2024, 6, 10, 11, 30)).current.response
    assert warned.state is ClockState.AT_RISK
    assert [(c.kind, c.threshold, c.crossed_at) for c in warned.crossings] == [
        (CrossingKind.WARNING, 0.5, utc(2024, 6, 10, 10)),
        (CrossingKind.WARNING, 0.75, utc(2024, 6, 10, 11)),
    ]

    # On the due instant the clock has not run past it yet.
    on_due = evaluate(history, utc(2024, 6, 10, 12)).current.response
    assert on_due.state is ClockState.AT_RISK
    late = evaluate(history, utc(2024, 6, 10, 12) + MICROSECOND).current.response
    assert late.state is ClockState.BREACHED
    assert late.crossings[-1].kind is CrossingKind.BREACH
    assert late.crossings[-1].crossed_at == utc(2024, 6, 10, 12)


def test_response_across_weekend():
    # Created Fri 2024-06-14 15:00 CEST (13:00 UTC): 2 hours on Friday, the
    # other 2 from Mon 08:00 CEST, so due Mon 10:00 CEST = 08:00 UTC.
    # Warnings: 2 h is reached at Friday's closing (15:00 UTC), 3 h at Mon 07:00 UTC.
    history = History().created(utc(2024, 6, 14, 13)).add("arrived", utc(2024, 6, 17, 7, 30))
    response = evaluate(history, utc(2024, 6, 17, 9)).current.response
    assert response.due_at == utc(2024, 6, 17, 8)
    assert response.state is ClockState.MET
    assert response.stopped_at == utc(2024, 6, 17, 7, 30)
    assert response.elapsed == 3 * H + 30 * MINUTE
    assert [c.crossed_at for c in response.crossings] == [utc(2024, 6, 14, 15), utc(2024, 6, 17, 7)]


def test_response_across_holiday():
    # Created Wed 2024-10-02 16:00 CEST (14:00 UTC): 1 hour on Wednesday,
    # Thursday 2024-10-03 is a holiday, 3 hours from Fri 08:00 CEST (06:00
    # UTC): due Fri 09:00 UTC. At Fri 08:00 UTC 3 hours are used, and the 3 h
    # warning is reached exactly now, so only the 2 h one (Fri 07:00) is crossed.
    history = History().created(utc(2024, 10, 2, 14))
    response = evaluate(history, utc(2024, 10, 4, 8)).current.response
    assert response.due_at == utc(2024, 10, 4, 9)
    assert response.elapsed == 3 * H
    assert response.state is ClockState.AT_RISK
    assert [c.crossed_at for c in response.crossings] == [utc(2024, 10, 4, 7)]


def test_due_across_dst_end_berlin_business():
    # Created Fri 2024-10-25 15:00 CEST (13:00 UTC): 2 hours on Friday, then
    # Mon 2024-10-28 08:00 CET (07:00 UTC) plus 2 hours.
    history = History().created(utc(2024, 10, 25, 13))
    assert evaluate(history, utc(2024, 10, 25, 14)).current.response.due_at == utc(2024, 10, 28, 9)


def test_due_across_dst_end_new_york_business():
    # Created Fri 2024-11-01 15:00 EDT (19:00 UTC): 2 hours until 17:00 EDT,
    # then Mon 2024-11-04 08:00 EST (13:00 UTC) plus 2 hours.
    policy = SlaPolicy(calendar=NEW_YORK_OFFICE, targets=TARGETS)
    history = History().created(utc(2024, 11, 1, 19))
    assert evaluate(history, utc(2024, 11, 1, 20), policy).current.response.due_at == utc(2024, 11, 4, 15)


def test_due_across_dst_start_24x7():
    # Created Sat 2024-03-09 22:00 EST (2024-03-10 03:00 UTC). Response due 4
    # real hours later, 07:00 UTC, which is 03:00 EDT on the wall clock;
    # resolution due 11:00 UTC (07:00 EDT).
    policy = SlaPolicy(calendar=TwentyFourSeven(), targets=TARGETS)
    history = History().created(utc(2024, 3, 10, 3))
    cycle = evaluate(history, utc(2024, 3, 10, 4), policy).current
    assert cycle.response.due_at == utc(2024, 3, 10, 7)
    assert cycle.resolution.due_at == utc(2024, 3, 10, 11)


def test_due_across_dst_end_24x7():
    # Created Sat 2024-10-26 23:00 CEST (21:00 UTC). Response due 01:00 UTC,
    # which is the second 02:00 (CET) on the Berlin wall clock.
    policy = SlaPolicy(calendar=TwentyFourSeven(), targets=TARGETS)
    history = History().created(utc(2024, 10, 26, 21))
    assert evaluate(history, utc(2024, 10, 26, 22), policy).current.response.due_at == utc(2024, 10, 27, 1)


def test_completion_exactly_on_due_is_met():
    # Created Mon 06:00 UTC (08:00 CEST): resolution due 8 hours later, 14:00 UTC.
    def history(completed_at: dt.datetime) -> History:
        return History().created(utc(2024, 6, 10, 6)).on_site(utc(2024, 6, 10, 7)).add("completed", completed_at)

    on_time = evaluate(history(utc(2024, 6, 10, 14)), utc(2024, 6, 10, 16)).current.resolution
    assert on_time.due_at == utc(2024, 6, 10, 14)
    assert on_time.state is ClockState.MET
    assert [c.kind for c in on_time.crossings] == [CrossingKind.WARNING, CrossingKind.WARNING]

    late = evaluate(history(utc(2024, 6, 10, 14) + MICROSECOND), utc(2024, 6, 10, 16)).current.resolution
    assert late.state is ClockState.BREACHED
    assert late.crossings[-1].kind is CrossingKind.BREACH
    assert late.crossings[-1].crossed_at == utc(2024, 6, 10, 14)


def test_completion_outside_hours_after_due_is_breached():
    # Due Fri 2024-06-14 17:00 CEST (15:00 UTC) exactly at closing time.
    # Completing on Saturday uses no more business time but is after the due instant.
    history = (
        History()
        .created(utc(2024, 6, 14, 7))
        .on_site(utc(2024, 6, 14, 8))
        .add("completed", utc(2024, 6, 15, 9))
    )
    resolution = evaluate(history, utc(2024, 6, 15, 10)).current.resolution
    assert resolution.due_at == utc(2024, 6, 14, 15)
    assert resolution.elapsed == 8 * H
    assert resolution.state is ClockState.BREACHED


def test_completion_stops_response_without_arrival():
    # The transition table requires an arrival first; the engine still stops
    # the response clock at completion instead of letting it run.
    history = History().created(utc(2024, 6, 10, 6)).add("completed", utc(2024, 6, 10, 8))
    response = evaluate(history, utc(2024, 6, 10, 12)).current.response
    assert response.state is ClockState.MET
    assert response.stopped_at == utc(2024, 6, 10, 8)


# --- Pauses -------------------------------------------------------------------


def test_pause_before_start_is_clipped():
    # A customer hold with an effective time of 07:00 UTC, before the order
    # was created at 08:00 UTC, ends at 09:00 UTC: only 08:00-09:00 pauses.
    # Response due moves from 12:00 to 13:00 UTC, resolution from Tue 07:00 to 08:00 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 8))
        .hold(utc(2024, 6, 10, 7), HoldReason.CUSTOMER)
        .add("work_resumed", utc(2024, 6, 10, 9))
    )
    cycle = evaluate(history, utc(2024, 6, 10, 10)).current
    assert cycle.response.paused == H
    assert cycle.response.elapsed == H
    assert cycle.response.due_at == utc(2024, 6, 10, 13)
    assert cycle.resolution.due_at == utc(2024, 6, 11, 8)
    assert cycle.response.state is ClockState.RUNNING


def test_overlapping_pauses_count_once():
    # Customer hold 08:00, access hold 08:30 (before a resume), resume 09:00:
    # one pause of 1 hour, not 1.5. The parts hold 10:00-11:00 does not pause.
    # Resolution: 8 h from 06:00 UTC plus 1 h paused, due 15:00 UTC (closing).
    # The 4 h warning: 2 h before the pause, 2 h after it, so 11:00 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 8), HoldReason.CUSTOMER)
        .hold(utc(2024, 6, 10, 8, 30), HoldReason.ACCESS)
        .add("work_resumed", utc(2024, 6, 10, 9))
        .hold(utc(2024, 6, 10, 10), HoldReason.PARTS)
        .add("work_resumed", utc(2024, 6, 10, 11))
    )
    resolution = evaluate(history, utc(2024, 6, 10, 12)).current.resolution
    assert resolution.paused == H
    assert resolution.elapsed == 5 * H
    assert resolution.due_at == utc(2024, 6, 10, 15)
    assert resolution.state is ClockState.AT_RISK
    assert [(c.threshold, c.crossed_at) for c in resolution.crossings] == [(0.5, utc(2024, 6, 10, 11))]


def test_pause_outside_business_hours_counts_once():
    # P2 (16 h resolution), created Mon 06:00 UTC. A customer hold runs from
    # Mon 16:00 CEST (14:00 UTC) to Tue 09:00 CEST (07:00 UTC): it removes
    # 1 hour on Monday and 1 on Tuesday, not the 17 hours of the night.
    # Counted: Mon 06:00-14:00 (8 h), then 8 h from Tue 07:00, due 15:00 UTC.
    # Without the hold it would be due Tue 13:00 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 6), Priority.P2)
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 14), HoldReason.CUSTOMER)
        .add("work_resumed", utc(2024, 6, 11, 7))
    )
    resolution = evaluate(history, utc(2024, 6, 11, 8)).current.resolution
    assert resolution.paused == 2 * H
    assert resolution.elapsed == 9 * H
    assert resolution.due_at == utc(2024, 6, 11, 15)


def test_open_pause_holds_the_clock():
    # A customer hold from 10:00 UTC not yet resumed: the due instant is
    # unknown and the state is paused. 4 h counted before the hold.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 10), HoldReason.ACCESS)
    )
    cycle = evaluate(history, utc(2024, 6, 11, 12)).current
    assert cycle.resolution.state is ClockState.PAUSED
    assert cycle.resolution.due_at is None
    assert cycle.resolution.elapsed == 4 * H
    # Mon 10:00-15:00 UTC and Tue 06:00-12:00 UTC are paused business time.
    assert cycle.resolution.paused == 11 * H
    assert cycle.response.state is ClockState.MET


def test_breach_before_pause_stays_breached():
    # P1 resolution due 14:00 UTC; the customer hold starts at 14:30 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 14, 30), HoldReason.CUSTOMER)
    )
    resolution = evaluate(history, utc(2024, 6, 10, 15)).current.resolution
    assert resolution.state is ClockState.BREACHED
    assert resolution.due_at == utc(2024, 6, 10, 14)


def test_travel_started_ends_a_hold():
    # Leaving a job on customer hold and travelling again ends the pause:
    # hold 08:00-10:00 UTC, so resolution due moves from 14:00 to 16:00 UTC,
    # past Monday's closing at 15:00: 1 hour remains for Tue 06:00, due 07:00 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 8), HoldReason.CUSTOMER)
        .add("travel_started", utc(2024, 6, 10, 10))
    )
    resolution = evaluate(history, utc(2024, 6, 10, 11)).current.resolution
    assert resolution.paused == 2 * H
    assert resolution.due_at == utc(2024, 6, 11, 7)
    assert resolution.state is ClockState.RUNNING


def test_pausing_reasons_come_from_policy():
    policy = SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, pausing_hold_reasons=frozenset({HoldReason.PARTS}))
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .hold(utc(2024, 6, 10, 8), HoldReason.PARTS)
        .add("work_resumed", utc(2024, 6, 10, 9))
    )
    assert evaluate(history, utc(2024, 6, 10, 10), policy).current.resolution.paused == H
    assert evaluate(history, utc(2024, 6, 10, 10), POLICY).current.resolution.paused == dt.timedelta(0)


# --- Reopen -------------------------------------------------------------------


def reopened_history() -> History:
    # Created Mon 06:00 UTC, on site 07:00, completed 09:00 (3 h of
    # resolution used), closed, reopened Tue 2024-06-11 08:00 UTC (10:00 CEST).
    return (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .add("completed", utc(2024, 6, 10, 9))
        .add("closed", utc(2024, 6, 10, 10))
        .add("reopened", utc(2024, 6, 11, 8))
    )


def test_reopen_starts_new_cycle():
    # Cycle 2 starts Tue 08:00 UTC: response due 12:00 UTC; resolution 7 h on
    # Tuesday until 15:00 UTC and 1 h from Wed 06:00, due Wed 07:00 UTC.
    evaluation = evaluate(reopened_history(), utc(2024, 6, 11, 9))
    first, second = evaluation.cycles
    assert first.resolution.state is ClockState.MET
    assert first.resolution.elapsed == 3 * H
    assert second.number == 2
    assert second.started_at == utc(2024, 6, 11, 8)
    assert second.response.due_at == utc(2024, 6, 11, 12)
    assert second.response.state is ClockState.RUNNING
    assert second.resolution.due_at == utc(2024, 6, 12, 7)
    assert second.resolution.elapsed == H
    assert evaluation.current is second


def test_reopen_continues_old_cycle():
    # 3 h used before the completion; 5 h remain from Tue 08:00 UTC, so due
    # Tue 13:00 UTC. The 4 h warning is reached 1 h after the reopen (09:00).
    history = reopened_history()
    evaluation = evaluate(history, utc(2024, 6, 11, 9, 30), CONTINUE_POLICY)
    assert len(evaluation.cycles) == 1
    cycle = evaluation.current
    assert cycle.response.state is ClockState.MET
    assert cycle.resolution.due_at == utc(2024, 6, 11, 13)
    assert cycle.resolution.elapsed == 4 * H + 30 * MINUTE
    assert cycle.resolution.state is ClockState.AT_RISK
    assert [c.crossed_at for c in cycle.resolution.crossings] == [utc(2024, 6, 11, 9)]

    # A second completion before the due instant meets the target.
    history.on_site(utc(2024, 6, 11, 10)).add("completed", utc(2024, 6, 11, 12, 30))
    done = evaluate(history, utc(2024, 6, 11, 14), CONTINUE_POLICY).current.resolution
    assert done.state is ClockState.MET
    assert done.stopped_at == utc(2024, 6, 11, 12, 30)
    assert done.elapsed == 7 * H + 30 * MINUTE


def test_reopen_before_completion_is_ignored():
    history = History().created(utc(2024, 6, 10, 6)).add("reopened", utc(2024, 6, 10, 7))
    evaluation = evaluate(history, utc(2024, 6, 10, 8))
    assert len(evaluation.cycles) == 1
    assert evaluation.current.resolution.due_at == utc(2024, 6, 10, 14)


def test_priority_change_applies_from_next_cycle():
    # Raised from P1 to P2 during cycle 1: cycle 1 keeps P1 targets (due
    # 14:00 UTC). Cycle 2 from Tue 08:00 UTC uses P2: 8 h response, 7 h on
    # Tuesday and 1 h on Wednesday, due Wed 07:00 UTC.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .add("priority_changed", utc(2024, 6, 10, 6, 30), priority=Priority.P2)
        .on_site(utc(2024, 6, 10, 7))
        .add("completed", utc(2024, 6, 10, 9))
        .add("reopened", utc(2024, 6, 11, 8))
    )
    first, second = evaluate(history, utc(2024, 6, 11, 9)).cycles
    assert first.priority is Priority.P1
    assert first.resolution.due_at == utc(2024, 6, 10, 14)
    assert second.priority is Priority.P2
    assert second.response.due_at == utc(2024, 6, 12, 7)


def test_policy_in_force_at_cycle_start():
    # From Tue 2024-06-11 00:00 UTC the contract gives P1 a 2-hour response.
    # Cycle 1 (created Mon 06:00) keeps 4 hours: due Mon 10:00 UTC. Cycle 2
    # (reopened Tue 08:00) uses 2 hours: due Tue 10:00 UTC.
    newer = SlaPolicy(
        calendar=BERLIN_OFFICE,
        targets={**TARGETS, Priority.P1: targets(2, 8)},
        effective_from=utc(2024, 6, 11),
    )
    first, second = evaluate(reopened_history(), utc(2024, 6, 11, 9), [newer, POLICY]).cycles
    assert first.policy is POLICY
    assert first.response.due_at == utc(2024, 6, 10, 10)
    assert second.policy is newer
    assert second.response.due_at == utc(2024, 6, 11, 10)


# --- Cancellation, "now" and missing events -----------------------------------


def test_cancelled_order():
    # Created Mon 06:00 UTC and cancelled 09:00 UTC. The response warning at
    # 2 h (08:00) happened before the cancellation and is kept; the arrival
    # after the cancellation is ignored.
    history = (
        History()
        .created(utc(2024, 6, 10, 6))
        .add("cancelled", utc(2024, 6, 10, 9))
        .add("arrived", utc(2024, 6, 10, 10))
    )
    cycle = evaluate(history, utc(2024, 6, 10, 12)).current
    assert cycle.response.state is ClockState.CANCELLED
    assert cycle.resolution.state is ClockState.CANCELLED
    assert cycle.response.stopped_at == utc(2024, 6, 10, 9)
    assert [c.crossed_at for c in cycle.response.crossings] == [utc(2024, 6, 10, 8)]


def test_events_after_now_are_ignored():
    history = History().created(utc(2024, 6, 10, 6)).add("arrived", utc(2024, 6, 10, 9))
    before = evaluate(history, utc(2024, 6, 10, 8)).current.response
    assert before.state is ClockState.RUNNING
    assert before.stopped_at is None


def test_no_created_event_means_no_cycle():
    history = History().add("arrived", utc(2024, 6, 10, 9))
    evaluation = evaluate(history, utc(2024, 6, 10, 10))
    assert evaluation.cycles == ()
    assert evaluation.current is None
    assert evaluation.crossings == ()
    # Created after `now` has not happened yet either.
    assert evaluate(History().created(utc(2024, 6, 10, 9)), utc(2024, 6, 10, 8)).cycles == ()


def test_crossings_of_all_cycles_with_keys():
    evaluation = evaluate(reopened_history(), utc(2024, 6, 12, 12))
    keys = [crossing.key for crossing in evaluation.crossings]
    assert len(keys) == len(set(keys))
    assert "1/response/warning/0.5" not in keys  # arrived 07:00, before 08:00
    assert "2/response/breach/1.0" in keys
    assert "2/resolution/breach/1.0" in keys
    breach = next(c for c in evaluation.crossings if c.key == "2/resolution/breach/1.0")
    assert breach.crossed_at == utc(2024, 6, 12, 7)
    assert breach.clock is ClockKind.RESOLUTION
    instants = [crossing.crossed_at for crossing in evaluation.crossings]
    assert instants == sorted(instants)


# --- Late and out-of-order events ---------------------------------------------


def late_hold_history() -> History:
    # The office changes the priority at 10:00 UTC (stream version 4). The
    # engineer's tablet was offline: its customer hold 08:00-09:00 UTC is
    # recorded afterwards, as versions 5 and 6.
    return (
        History()
        .created(utc(2024, 6, 10, 6))
        .on_site(utc(2024, 6, 10, 7))
        .add("priority_changed", utc(2024, 6, 10, 10), priority=Priority.P2)
        .hold(utc(2024, 6, 10, 8), HoldReason.CUSTOMER)
        .add("work_resumed", utc(2024, 6, 10, 9))
    )


def test_late_events_recompute_the_past():
    history = late_hold_history()
    now = utc(2024, 6, 10, 12)
    before_late = evaluate_sla(history.events[:-2], POLICY, now).current.resolution
    after_late = evaluate(history, now).current.resolution
    # Without the hold the resolution is due 14:00 UTC; the hour paused moves it to 15:00.
    assert before_late.due_at == utc(2024, 6, 10, 14)
    assert after_late.due_at == utc(2024, 6, 10, 15)


def test_input_order_does_not_matter():
    history = late_hold_history()
    now = utc(2024, 6, 10, 12)
    expected = evaluate(history, now)
    by_time = sorted(history.events, key=lambda event: event.effective_time)
    shuffled = list(history.events)
    random.Random(7).shuffle(shuffled)
    assert evaluate_sla(list(reversed(history.events)), POLICY, now) == expected
    assert evaluate_sla(by_time, POLICY, now) == expected
    assert evaluate_sla(shuffled, POLICY, now) == expected


def test_equal_times_ordered_by_sequence():
    # A hold and a resume with the same effective time: the stream version
    # decides which came first. Hold then resume is an empty pause; resume
    # then hold leaves the hold open.
    at = utc(2024, 6, 10, 8)
    base = History().created(utc(2024, 6, 10, 6)).on_site(utc(2024, 6, 10, 7))
    hold_first = list(base.events) + [
        SlaEvent(sequence=10, type="hold_started", effective_time=at, hold_reason=HoldReason.CUSTOMER),
        SlaEvent(sequence=11, type="work_resumed", effective_time=at),
    ]
    resume_first = list(base.events) + [
        SlaEvent(sequence=11, type="hold_started", effective_time=at, hold_reason=HoldReason.CUSTOMER),
        SlaEvent(sequence=10, type="work_resumed", effective_time=at),
    ]
    now = utc(2024, 6, 10, 9)
    assert evaluate_sla(hold_first, POLICY, now).current.resolution.state is ClockState.RUNNING
    assert evaluate_sla(resume_first, POLICY, now).current.resolution.state is ClockState.PAUSED


# --- Conversion from the event log --------------------------------------------


def recorded(event_type: str, version: int, payload: dict, at: dt.datetime) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        global_position=100 + version,
        stream_version=version,
        client_event_id=uuid.uuid4(),
        work_order_id="wo-1001",
        type=event_type,
        payload=payload,
        occurred_at=at,
        effective_time=at,
        recorded_at=at,
        base_version=version - 1,
        device_id="tablet-e17",
        actor="e-17",
        actor_role="engineer",
    )


def test_from_recorded_event():
    at = utc(2024, 6, 10, 6)
    payload = {"title": "Spindle", "site_id": "s-1", "priority": "P2"}
    created = SlaEvent.from_recorded(recorded("created", 1, payload, at))
    assert created == SlaEvent(sequence=1, type="created", effective_time=at, priority=Priority.P2)
    # The payload's default priority is P3.
    default = SlaEvent.from_recorded(recorded("created", 1, {"title": "Spindle", "site_id": "s-1"}, at))
    assert default.priority is Priority.P3
    hold = SlaEvent.from_recorded(recorded("hold_started", 5, {"reason": "access"}, at))
    assert hold.hold_reason is HoldReason.ACCESS
    arrived = SlaEvent.from_recorded(recorded("arrived", 3, {}, at))
    assert (arrived.type, arrived.sequence, arrived.priority) == ("arrived", 3, None)


# --- Invalid input ------------------------------------------------------------


def test_naive_now_rejected():
    with pytest.raises(ValueError, match=r"^now: naive datetime 2024-06-10T08:00:00 "):
        evaluate_sla([], POLICY, dt.datetime(2024, 6, 10, 8))


def test_naive_effective_time_rejected():
    with pytest.raises(ValueError, match=r"^effective_time: naive datetime 2024-06-10T08:00:00 "):
        SlaEvent(sequence=1, type="arrived", effective_time=dt.datetime(2024, 6, 10, 8))


def test_negative_target_rejected():
    with pytest.raises(ValueError, match=r"^response: must be a positive duration, got -3600 seconds$"):
        PriorityTargets(response=-H, resolution=H)


def test_zero_target_rejected():
    with pytest.raises(ValueError, match=r"^resolution: must be a positive duration, got 0 seconds$"):
        PriorityTargets(response=H, resolution=dt.timedelta(0))


def test_missing_priority_rejected():
    partial = {Priority.P1: targets(4, 8), Priority.P2: targets(8, 16)}
    with pytest.raises(ValueError, match=r"^targets: missing priorities P3, P4"):
        SlaPolicy(calendar=BERLIN_OFFICE, targets=partial)


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ((0.5, 1.5), r"^warning_thresholds\[1\]: must lie strictly between 0 and 1, got 1.5$"),
        ((0.0,), r"^warning_thresholds\[0\]: must lie strictly between 0 and 1, got 0.0$"),
        ((0.75, 0.5), r"^warning_thresholds\[1\]: thresholds must be strictly increasing, got 0.5 after 0.75$"),
        ((float("nan"),), r"^warning_thresholds\[0\]: expected a number, got nan$"),
    ],
)
def test_bad_warning_thresholds_rejected(thresholds, message):
    with pytest.raises(ValueError, match=message):
        SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, warning_thresholds=thresholds)


def test_unknown_hold_reason_rejected():
    with pytest.raises(ValueError, match=r"^pausing_hold_reasons: 'lunch' is not one of 'parts', 'customer'"):
        SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, pausing_hold_reasons=frozenset({"lunch"}))


def test_naive_effective_from_rejected():
    with pytest.raises(ValueError, match=r"^effective_from: naive datetime"):
        SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, effective_from=dt.datetime(2024, 1, 1))


def test_duplicate_effective_from_rejected():
    with pytest.raises(ValueError, match=r"^policies\[1\].effective_from: None is used by another policy$"):
        evaluate_sla([], [POLICY, CONTINUE_POLICY], utc(2024, 6, 10))


def test_no_policy_in_force_rejected():
    later = SlaPolicy(calendar=BERLIN_OFFICE, targets=TARGETS, effective_from=utc(2025, 1, 1))
    with pytest.raises(ValueError, match=r"^policies: no policy is in force at 2024-06-10T06:00:00\+00:00"):
        evaluate(History().created(utc(2024, 6, 10, 6)), utc(2024, 6, 10, 8), [later])


def test_duplicate_sequence_rejected():
    events = [
        SlaEvent(sequence=1, type="created", effective_time=utc(2024, 6, 10, 6), priority=Priority.P1),
        SlaEvent(sequence=1, type="arrived", effective_time=utc(2024, 6, 10, 7)),
    ]
    with pytest.raises(ValueError, match=r"^events\[1\].sequence: 1 is used by another event$"):
        evaluate_sla(events, POLICY, utc(2024, 6, 10, 8))


def test_created_without_priority_rejected():
    with pytest.raises(ValueError, match=r"^priority: a created event needs a priority, got None$"):
        SlaEvent(sequence=1, type="created", effective_time=utc(2024, 6, 10, 6))


def test_hold_without_reason_rejected():
    with pytest.raises(ValueError, match=r"^hold_reason: a hold_started event needs a hold reason, got None$"):
        SlaEvent(sequence=1, type="hold_started", effective_time=utc(2024, 6, 10, 6))


# --- Properties ---------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
START = utc(2024, 3, 28, 6)  # Thursday before the Berlin DST start and Easter
EVENT_TYPES = [
    "arrived", "work_started", "hold_started", "work_resumed", "completed", "closed",
    "reopened", "priority_changed", "travel_started", "cancelled", "note_added",
]
POLICIES = [
    POLICY,
    CONTINUE_POLICY,
    SlaPolicy(calendar=TwentyFourSeven(), targets=TARGETS),
    SlaPolicy(calendar=NEW_YORK_OFFICE, targets=TARGETS, reopen=ReopenMode.CONTINUE,
              pausing_hold_reasons=frozenset(HoldReason), warning_thresholds=(0.9,)),
]


@st.composite
def histories(draw) -> list[SlaEvent]:
    # Offsets on a 15-minute grid over 6 days make equal effective times common.
    offsets = st.integers(min_value=0, max_value=6 * 24 * 4).map(lambda quarters: quarters * 15 * MINUTE)
    events = [SlaEvent(sequence=0, type="created", effective_time=START, priority=draw(st.sampled_from(Priority)))]
    for sequence in range(1, draw(st.integers(min_value=0, max_value=14)) + 1):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        fields = {}
        if event_type == "hold_started":
            fields["hold_reason"] = draw(st.sampled_from(HoldReason))
        if event_type == "priority_changed":
            fields["priority"] = draw(st.sampled_from(Priority))
        events.append(SlaEvent(sequence=sequence, type=event_type, effective_time=START + draw(offsets), **fields))
    return events


@PROPERTY_SETTINGS
@given(events=histories(), policy=st.sampled_from(POLICIES), data=st.data())
def test_property_result_depends_only_on_event_set(events, policy, data):
    now = START + data.draw(st.integers(min_value=0, max_value=8 * 24 * 4)) * 15 * MINUTE
    expected = evaluate_sla(events, policy, now)
    permuted = data.draw(st.permutations(events))
    assert evaluate_sla(permuted, policy, now) == expected


@PROPERTY_SETTINGS
@given(events=histories(), policy=st.sampled_from(POLICIES), data=st.data())
def test_property_single_window_accounting(events, policy, data):
    now = START + data.draw(st.integers(min_value=0, max_value=8 * 24 * 4)) * 15 * MINUTE
    for cycle in evaluate_sla(events, policy, now).cycles:
        clock = cycle.response
        end = clock.stopped_at or now
        # Counted and paused business time split the window's business time.
        assert clock.elapsed + clock.paused == business_duration(policy.calendar, clock.started_at, end)
        if clock.paused == dt.timedelta(0) and clock.due_at is not None:
            assert business_duration(policy.calendar, clock.started_at, clock.due_at) == clock.target
        breached = clock.due_at is not None and clock.due_at < end
        assert breached == any(c.kind is CrossingKind.BREACH for c in clock.crossings)
