"""A contract's SLA policy: targets per priority, pausing hold reasons, warnings, reopen mode."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence

import msgspec

from shared_schema.payloads import HoldReason, Priority

from ._checks import require_aware, require_positive_duration
from .calendar import BusinessCalendar, TwentyFourSeven


class ReopenMode(str, enum.Enum):
    """Effect of a `reopened` event on the SLA of a completed order."""

    NEW_CYCLE = "new_cycle"
    """Start new response and resolution clocks at the reopen instant."""
    CONTINUE = "continue"
    """Restart the stopped resolution clock with the business time already used."""


class PriorityTargets(msgspec.Struct, frozen=True, kw_only=True):
    """Business durations allowed for one priority."""

    response: dt.timedelta
    """From the start of the cycle to the first `arrived` on site."""
    resolution: dt.timedelta
    """From the start of the cycle to `completed`."""

    def __post_init__(self) -> None:
        require_positive_duration("response", self.response)
        require_positive_duration("resolution", self.resolution)


DEFAULT_PAUSING_HOLD_REASONS = frozenset({HoldReason.CUSTOMER, HoldReason.ACCESS})
DEFAULT_WARNING_THRESHOLDS = (0.5, 0.75)


class SlaPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The SLA terms of a contract, in force from `effective_from` on."""

    calendar: BusinessCalendar | TwentyFourSeven
    targets: dict[Priority, PriorityTargets]
    """Targets for every priority, P1 to P4."""
    pausing_hold_reasons: frozenset[HoldReason] = DEFAULT_PAUSING_HOLD_REASONS
    warning_thresholds: tuple[float, ...] = DEFAULT_WARNING_THRESHOLDS
    """Fractions of a target, strictly increasing, each between 0 and 1 exclusive."""
    reopen: ReopenMode = ReopenMode.NEW_CYCLE
    effective_from: dt.datetime | None = None
    """First instant this policy applies to; None means since always."""

    def __post_init__(self) -> None:
        if not isinstance(self.calendar, (BusinessCalendar, TwentyFourSeven)):
            raise ValueError(f"calendar: expected BusinessCalendar or TwentyFourSeven, got {self.calendar!r}")
        _validate_targets(self.targets)
        for reason in self.pausing_hold_reasons:
            _require_enum_value("pausing_hold_reasons", HoldReason, reason)
        _validate_thresholds(self.warning_thresholds)
        _require_enum_value("reopen", ReopenMode, self.reopen)
        if self.effective_from is not None:
            require_aware("effective_from", self.effective_from)

    def targets_for(self, priority: Priority) -> PriorityTargets:
        """Return the targets of `priority`."""
        # Keys may be Priority members or their string values.
        for key, targets in self.targets.items():
            if Priority(key) is Priority(priority):
                return targets
        raise KeyError(priority)

    def pauses_for(self, reason: HoldReason) -> bool:
        """Return whether a hold with `reason` pauses the clocks."""
        return any(HoldReason(value) is HoldReason(reason) for value in self.pausing_hold_reasons)


def select_policy(policies: Sequence[SlaPolicy], at: dt.datetime) -> SlaPolicy:
    """Return the policy in force at `at`: the one with the latest `effective_from` not after it."""
    at = require_aware("at", at)
    in_force = [
        policy
        for policy in policies
        if policy.effective_from is None or policy.effective_from <= at
    ]
    if not in_force:
        raise ValueError(f"policies: no policy is in force at {at.isoformat()}; the earliest effective_from is later")
    return max(in_force, key=_effective_from_key)


def validate_policies(policies: SlaPolicy | Sequence[SlaPolicy]) -> tuple[SlaPolicy, ...]:
    """Return the policies as a tuple, or raise ValueError if two share an `effective_from`."""
    if isinstance(policies, SlaPolicy):
        return (policies,)
    policies = tuple(policies)
    if not policies:
        raise ValueError("policies: expected at least one SlaPolicy, got none")
    seen: set[dt.datetime | None] = set()
    for index, policy in enumerate(policies):
        if not isinstance(policy, SlaPolicy):
            raise ValueError(f"policies[{index}]: expected an SlaPolicy, got {policy!r}")
        key = None if policy.effective_from is None else policy.effective_from.astimezone(dt.UTC)
        if key in seen:
            effective_from_text = "None" if key is None else key.isoformat()
            raise ValueError(f"policies[{index}].effective_from: {effective_from_text} is used by another policy")
        seen.add(key)
    return policies


def _effective_from_key(policy: SlaPolicy) -> dt.datetime:
    if policy.effective_from is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return policy.effective_from


def _validate_targets(targets: object) -> None:
    if not isinstance(targets, dict):
        raise ValueError(f"targets: expected a dict of Priority to PriorityTargets, got {targets!r}")
    for key, value in targets.items():
        _require_enum_value("targets", Priority, key)
        if not isinstance(value, PriorityTargets):
            raise ValueError(f"targets[{key!r}]: expected PriorityTargets, got {value!r}")
    present = {Priority(key) for key in targets}
    missing = [priority.value for priority in Priority if priority not in present]
    if missing:
        raise ValueError(f"targets: missing priorities {', '.join(missing)}; every priority needs targets")


def _validate_thresholds(thresholds: object) -> None:
    if not isinstance(thresholds, tuple):
        raise ValueError(f"warning_thresholds: expected a tuple of fractions, got {thresholds!r}")
    previous = 0.0
    for index, threshold in enumerate(thresholds):
        field = f"warning_thresholds[{index}]"
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
            raise ValueError(f"{field}: expected a number, got {threshold!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"{field}: must lie strictly between 0 and 1, got {threshold!r}")
        if threshold <= previous:
            raise ValueError(f"{field}: thresholds must be strictly increasing, got {threshold!r} after {previous!r}")
        previous = threshold


def _require_enum_value(field: str, enum_type: type[enum.Enum], value: object) -> None:
    try:
        enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise ValueError(f"{field}: {value!r} is not one of {allowed}") from None
