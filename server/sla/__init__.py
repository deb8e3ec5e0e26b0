"""SLA calculation: business calendars, contract policies and pure evaluation of a work order.

Nothing here reads a clock, a database or the network: callers pass the
events, the policies and the evaluation instant. `docs/sla.md` describes the rules.
"""

from .calendar import (
    BusinessCalendar,
    Calendar,
    OpeningInterval,
    TwentyFourSeven,
    add_business_duration,
    business_calendar,
    business_duration,
    iter_open_intervals,
    open_intervals,
)
from .clock import ClockKind, ClockResult, ClockState, ClockStop, Crossing, CrossingKind, evaluate_clock
from .engine import CycleResult, SlaEvaluation, SlaEvent, evaluate_sla
from .intervals import UNBOUNDED
from .policy import PriorityTargets, ReopenMode, SlaPolicy, select_policy

__all__ = [
    "UNBOUNDED",
    "BusinessCalendar",
    "Calendar",
    "ClockKind",
    "ClockResult",
    "ClockState",
    "ClockStop",
    "Crossing",
    "CrossingKind",
    "CycleResult",
    "OpeningInterval",
    "PriorityTargets",
    "ReopenMode",
    "SlaEvaluation",
    "SlaEvent",
    "SlaPolicy",
    "TwentyFourSeven",
    "add_business_duration",
    "business_calendar",
    "business_duration",
    "evaluate_clock",
    "evaluate_sla",
    "iter_open_intervals",
    "open_intervals",
    "select_policy",
]
