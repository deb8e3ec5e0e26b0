"""SLA evaluation of one work order from its recorded events and the current instant.

`evaluate_sla` is pure: the result depends only on the set of events, the
policies and `now`. Events are sorted by (effective_time, sequence), where
`sequence` is the event's stream version, so a late event with an earlier
effective time recomputes the past exactly as if it had arrived in time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from shared_schema.envelope import RecordedEvent, parse_payload
from shared_schema.payloads import Created, HoldReason, HoldStarted, Priority, PriorityChanged

from ._checks import require_aware
from .clock import ClockKind, ClockResult, ClockStop, Crossing, evaluate_clock
from .intervals import UNBOUNDED, Interval
from .policy import ReopenMode, SlaPolicy, select_policy, validate_policies

# Event types that end every hold that has not ended yet. They are the events
# after which `apply_event` clears the order's hold reason.
_HOLD_ENDING_TYPES = frozenset({"work_resumed", "travel_started", "reopened"})


class SlaEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a recorded event that SLA evaluation reads."""

    sequence: int
    """The event's stream version; it orders events with equal effective times."""
    type: str
    effective_time: dt.datetime
    priority: Priority | None = None
    """Set for `created` and `priority_changed`."""
    hold_reason: HoldReason | None = None
    """Set for `hold_started`."""

    def __post_init__(self) -> None:
        require_aware("effective_time", self.effective_time)
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            raise ValueError(f"sequence: expected an integer stream version, got {self.sequence!r}")
        if self.type in ("created", "priority_changed") and self.priority is None:
            raise ValueError(f"priority: a {self.type} event needs a priority, got None")
        if self.type == "hold_started" and self.hold_reason is None:
            raise ValueError("hold_reason: a hold_started event needs a hold reason, got None")

    @classmethod
    def from_recorded(cls, event: RecordedEvent) -> SlaEvent:
        """Convert an event of the append-only log, reading the payload fields SLA needs."""
        priority = None
        hold_reason = None
        if event.type in ("created", "priority_changed", "hold_started"):
            payload = parse_payload(event.type, event.payload)
            if isinstance(payload, (Created, PriorityChanged)):
                priority = payload.priority
            elif isinstance(payload, HoldStarted):
                hold_reason = payload.reason
        return cls(
            sequence=event.stream_version,
            type=event.type,
            effective_time=event.effective_time,
            priority=priority,
            hold_reason=hold_reason,
        )


class CycleResult(msgspec.Struct, frozen=True, kw_only=True):
    """The response and resolution clocks of one SLA cycle."""

    number: int
    """1 for the cycle that starts at `created`, then one more per new-cycle reopen."""
    started_at: dt.datetime
    priority: Priority
    """Priority at the start of the cycle, which selects the targets."""
    policy: SlaPolicy
    """Policy in force at the start of the cycle."""
    response: ClockResult
    resolution: ClockResult


class SlaEvaluation(msgspec.Struct, frozen=True, kw_only=True):
    """The SLA of one work order at `evaluated_at`."""

    evaluated_at: dt.datetime
    cycles: tuple[CycleResult, ...]
    """Empty when no `created` event lies at or before `evaluated_at`."""

    @property
    def current(self) -> CycleResult | None:
        """Return the latest cycle, or None when the SLA has not started."""
        return self.cycles[-1] if self.cycles else None

    @property
    def crossings(self) -> tuple[Crossing, ...]:
        """Return the crossings of every cycle, ordered by instant and then by key."""
        every: list[Crossing] = []
        for cycle in self.cycles:
            every.extend(cycle.response.crossings)
            every.extend(cycle.resolution.crossings)
        return tuple(sorted(every, key=lambda crossing: (crossing.crossed_at, crossing.key)))


@dataclasses.dataclass
class _Hold:
    start: dt.datetime
    reason: HoldReason
    end: dt.datetime = UNBOUNDED


@dataclasses.dataclass
class _Cycle:
    number: int
    start: dt.datetime
    priority: Priority
    policy: SlaPolicy
    response_end: dt.datetime = UNBOUNDED
    response_stop: ClockStop | None = None
    resolution_windows: list[list[dt.datetime]] = dataclasses.field(default_factory=list)
    resolution_stop: ClockStop | None = None


def evaluate_sla(
    events: Iterable[SlaEvent],
    policies: SlaPolicy | Sequence[SlaPolicy],
    now: dt.datetime,
) -> SlaEvaluation:
    """Evaluate the SLA of one work order from its events at instant `now`.

    Events after `now` are ignored, so the result is the SLA as it stood at
    `now`. Each cycle uses the policy in force at its start (see
    `select_policy`) and the order's priority at that instant.
    """
    now = require_aware("now", now)
    policies = validate_policies(policies)
    ordered = _order_events(events, now)

    recorded_holds: list[_Hold] = []
    cycles: list[_Cycle] = []
    priority: Priority | None = None
    for event, at in ordered:
        if event.type == "hold_started":
            recorded_holds.append(_Hold(start=at, reason=HoldReason(event.hold_reason)))
        elif event.type in _HOLD_ENDING_TYPES:
            for hold in recorded_holds:
                if hold.end == UNBOUNDED:
                    hold.end = at
        elif event.type == "priority_changed":
            priority = Priority(event.priority)
        elif event.type == "created" and not cycles:
            priority = Priority(event.priority)
            cycles.append(_start_cycle(1, at, priority, policies))

        if not cycles:
            continue
        cycle = cycles[-1]
        if event.type == "cancelled":
            _stop_running_clocks(cycle, at, ClockStop.CANCELLED)
            break
        if event.type == "arrived" and cycle.response_stop is None:
            cycle.response_end, cycle.response_stop = at, ClockStop.DONE
        elif event.type == "completed" and cycle.resolution_stop is None:
            # A completion without an arrival in the cycle also ends the
            # response clock; the transition table does not allow that order.
            _stop_running_clocks(cycle, at, ClockStop.DONE)
        elif event.type == "reopened" and cycle.resolution_stop is ClockStop.DONE:
            assert priority is not None
            if cycle.policy.reopen is ReopenMode.NEW_CYCLE:
                cycles.append(_start_cycle(cycle.number + 1, at, priority, policies))
            else:
                cycle.resolution_windows.append([at, UNBOUNDED])
                cycle.resolution_stop = None

    return SlaEvaluation(
        evaluated_at=now,
        cycles=tuple(_evaluate_cycle(cycle, recorded_holds, now) for cycle in cycles),
    )


def _order_events(events: Iterable[SlaEvent], now: dt.datetime) -> list[tuple[SlaEvent, dt.datetime]]:
    by_sequence: dict[int, SlaEvent] = {}
    for index, event in enumerate(events):
        if not isinstance(event, SlaEvent):
            raise ValueError(f"events[{index}]: expected an SlaEvent, got {event!r}")
        if event.sequence in by_sequence:
            raise ValueError(f"events[{index}].sequence: {event.sequence} is used by another event")
        by_sequence[event.sequence] = event
    timed = [(event, event.effective_time.astimezone(dt.UTC)) for event in by_sequence.values()]
    return sorted(
        ((event, at) for event, at in timed if at <= now),
        key=lambda item: (item[1], item[0].sequence),
    )


def _start_cycle(number: int, at: dt.datetime, priority: Priority, policies: Sequence[SlaPolicy]) -> _Cycle:
    cycle = _Cycle(number=number, start=at, priority=priority, policy=select_policy(policies, at))
    cycle.resolution_windows.append([at, UNBOUNDED])
    return cycle


def _stop_running_clocks(cycle: _Cycle, at: dt.datetime, stop: ClockStop) -> None:
    if cycle.response_stop is None:
        cycle.response_end, cycle.response_stop = at, stop
    if cycle.resolution_stop is None:
        cycle.resolution_windows[-1][1] = at
        cycle.resolution_stop = stop


def _evaluate_cycle(cycle: _Cycle, holds: list[_Hold], now: dt.datetime) -> CycleResult:
    policy = cycle.policy
    targets = policy.targets_for(cycle.priority)
    pauses: list[Interval] = [(hold.start, hold.end) for hold in holds if policy.pauses_for(hold.reason)]
    common = {
        "cycle": cycle.number,
        "calendar": policy.calendar,
        "warning_thresholds": policy.warning_thresholds,
        "pauses": pauses,
        "now": now,
    }
    response = evaluate_clock(
        kind=ClockKind.RESPONSE,
        target=targets.response,
        windows=[(cycle.start, cycle.response_end)],
        stop=cycle.response_stop,
        **common,
    )
    resolution = evaluate_clock(
        kind=ClockKind.RESOLUTION,
        target=targets.resolution,
        windows=[(start, end) for start, end in cycle.resolution_windows],
        stop=cycle.resolution_stop,
        **common,
    )
    return CycleResult(
        number=cycle.number,
        started_at=cycle.start,
        priority=cycle.priority,
        policy=policy,
        response=response,
        resolution=resolution,
    )
