"""The SLA of a stored work order, computed on read from its accepted events.

Nothing here is a projection: every call reads the order's events and the
contract's policy and evaluates them at `now`, so a late event with an
earlier effective time changes the result of the next call.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from typing import TYPE_CHECKING

import msgspec

from shared_schema import RecordedEvent, WorkOrderState

from ..store.sla_reads import read_stream
from .clock import ClockResult, ClockState
from .contracts import PolicyCatalog, PolicyUnavailable
from .engine import CycleResult, SlaEvaluation, SlaEvent, evaluate_sla
from .policy import SlaPolicy

if TYPE_CHECKING:
    from ..store import Store

# Event types that the SLA engine reads. The server's own SLA events and the
# field records are left out before evaluation.
SLA_INPUT_TYPES = frozenset(
    {
        "created",
        "priority_changed",
        "hold_started",
        "work_resumed",
        "travel_started",
        "arrived",
        "completed",
        "reopened",
        "cancelled",
    }
)


class CrossingView(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    kind: str
    threshold: float
    crossed_at: dt.datetime


class ClockView(msgspec.Struct, frozen=True, kw_only=True):
    clock: str
    state: ClockState
    target: dt.timedelta
    started_at: dt.datetime
    stopped_at: dt.datetime | None
    due_at: dt.datetime | None
    """None while a pause that has not ended holds the clock before its target."""
    business_elapsed: dt.timedelta
    business_paused: dt.timedelta
    crossings: list[CrossingView]


class CycleView(msgspec.Struct, frozen=True, kw_only=True):
    cycle: int
    started_at: dt.datetime
    priority: str
    policy_effective_from: dt.datetime | None
    response: ClockView
    resolution: ClockView


class SlaView(msgspec.Struct, frozen=True, kw_only=True):
    """Response of `GET /v1/work-orders/{id}/sla`."""

    work_order_id: str
    status: str
    contract_id: str | None
    evaluated_at: dt.datetime
    policies: list[SlaPolicy]
    """The contract's policy versions; empty when the order has no SLA."""
    no_sla_reason: str | None
    """Reason the order has no SLA (no contract, unknown contract, invalid policy); None when it has one."""
    cycles: list[CycleView]


class AtRiskItem(msgspec.Struct, frozen=True, kw_only=True):
    work_order_id: str
    status: str
    priority: str
    engineer_id: str | None
    contract_id: str | None
    cycle: int
    clock: str
    state: ClockState
    due_at: dt.datetime


class AtRiskPage(msgspec.Struct, frozen=True, kw_only=True):
    """Response of `GET /v1/sla/at-risk`."""

    evaluated_at: dt.datetime
    items: list[AtRiskItem]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True)
class OrderSla:
    """One order evaluated at an instant; `evaluation` is None when the order has no SLA."""

    state: WorkOrderState
    events: list[RecordedEvent]
    policies: tuple[SlaPolicy, ...]
    evaluation: SlaEvaluation | None
    no_sla_reason: str | None


def evaluate_events(events: list[RecordedEvent], policies: tuple[SlaPolicy, ...], now: dt.datetime) -> SlaEvaluation:
    """Evaluate the SLA from an order's recorded events, ignoring types the engine does not read."""
    inputs = [SlaEvent.from_recorded(event) for event in events if event.type in SLA_INPUT_TYPES]
    return evaluate_sla(inputs, policies, now)


async def evaluate_order(store: Store, state: WorkOrderState, catalog: PolicyCatalog, now: dt.datetime) -> OrderSla:
    """Read the order's events and evaluate its SLA at `now`; an unusable policy gives `no_sla_reason`."""
    events = await read_stream(store, state.work_order_id)
    if state.contract_id is None:
        return OrderSla(state, events, (), None, "the order has no contract")
    try:
        policies = catalog.policies_for(state.contract_id)
    except PolicyUnavailable as exc:
        return OrderSla(state, events, (), None, exc.message)
    try:
        evaluation = evaluate_events(events, policies, now)
    except ValueError as exc:
        # select_policy raises when no policy version is in force at the cycle's start.
        return OrderSla(state, events, policies, None, f"the SLA cannot be evaluated: {exc}")
    return OrderSla(state, events, policies, evaluation, None)


def sla_view(order: OrderSla, now: dt.datetime) -> SlaView:
    cycles = order.evaluation.cycles if order.evaluation else ()
    return SlaView(
        work_order_id=order.state.work_order_id,
        status=order.state.status.value,
        contract_id=order.state.contract_id,
        evaluated_at=now,
        policies=list(order.policies),
        no_sla_reason=order.no_sla_reason,
        cycles=[_cycle_view(cycle) for cycle in cycles],
    )


def _cycle_view(cycle: CycleResult) -> CycleView:
    return CycleView(
        cycle=cycle.number,
        started_at=cycle.started_at,
        priority=cycle.priority.value,
        policy_effective_from=cycle.policy.effective_from,
        response=_clock_view(cycle.response),
        resolution=_clock_view(cycle.resolution),
    )


def _clock_view(clock: ClockResult) -> ClockView:
    return ClockView(
        clock=clock.kind.value,
        state=clock.state,
        target=clock.target,
        started_at=clock.started_at,
        stopped_at=clock.stopped_at,
        due_at=clock.due_at,
        business_elapsed=clock.elapsed,
        business_paused=clock.paused,
        crossings=[
            CrossingView(
                key=crossing.key,
                kind=crossing.kind.value,
                threshold=crossing.threshold,
                crossed_at=crossing.crossed_at,
            )
            for crossing in clock.crossings
        ],
    )


AT_RISK_STATES = (ClockState.AT_RISK, ClockState.BREACHED)


def at_risk_items(order: OrderSla) -> list[AtRiskItem]:
    """Return the running clocks of the order's current cycle that are at risk or breached.

    A clock that stopped late (an arrival after the due instant) is breached
    for good and needs no action, so it is left out.
    """
    if order.evaluation is None or order.evaluation.current is None:
        return []
    cycle = order.evaluation.current
    items = []
    for clock in (cycle.response, cycle.resolution):
        if clock.state in AT_RISK_STATES and clock.stopped_at is None and clock.due_at is not None:
            items.append(
                AtRiskItem(
                    work_order_id=order.state.work_order_id,
                    status=order.state.status.value,
                    priority=order.state.priority.value,
                    engineer_id=order.state.engineer_id,
                    contract_id=order.state.contract_id,
                    cycle=cycle.number,
                    clock=clock.kind.value,
                    state=clock.state,
                    due_at=clock.due_at,
                )
            )
    return items
