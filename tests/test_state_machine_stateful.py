"""Stateful property test of the state machine and arbitration: a dispatcher, a manager and two offline tablets.

Hypothesis drives one work order. The office's proposals are decided against
the server's state at once. Each tablet records offline against its own copy
and applies its events optimistically with the same `decide`. It pushes its
outbox when it syncs. After every step the invariants below must hold for the log kept so far.
"""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared_schema import (
    EVENT_TYPES,
    TRANSITION_INDEX,
    Actor,
    DecisionStatus,
    ProposedEvent,
    ReasonCode,
    WorkOrderState,
    apply_event,
    clamp_effective_time,
    decide,
    parse_payload,
)
from schema_helpers import (
    DISPATCHER,
    ENGINEER_A,
    ENGINEER_B,
    ENGINEER_ON_A,
    ENGINEER_ON_B,
    MANAGER,
    T0,
    WORK_ORDER_ID,
    expected_status,
    make_proposal,
    valid_payload,
)

SKEW_TOLERANCE = dt.timedelta(minutes=2)
OFFICE_TYPES = ["created", "assigned", "reassigned", "unassigned", "cancelled", "closed", "priority_changed", "note_added"]
MANAGER_TYPES = ["cancelled", "reopened", "closed"]
ENGINEER_TYPES = [
    "accepted",
    "declined",
    "travel_started",
    "arrived",
    "work_started",
    "hold_started",
    "work_resumed",
    "completed",
    "note_added",
    "parts_used",
    "time_logged",
]
# Reasons that name a change the device missed; they require a stale base_version.
STALE_REASONS = {
    ReasonCode.SUPERSEDED,
    ReasonCode.CANCELLED_MEANWHILE,
    ReasonCode.REASSIGNED_MEANWHILE,
    ReasonCode.CLOSED_MEANWHILE,
    ReasonCode.WORK_ON_CANCELLED_ORDER,
    ReasonCode.WORK_ON_REASSIGNED_ORDER,
    ReasonCode.WORK_ON_CLOSED_ORDER,
}


class Tablet:
    """An engineer's device: a confirmed copy of the order, an outbox and an optimistic local state."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.confirmed: WorkOrderState | None = None
        self.local: WorkOrderState | None = None
        self.outbox: list[ProposedEvent] = []
        self.last_recorded: uuid.UUID | None = None


class FleetOfOneOrder(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state: WorkOrderState | None = None
        self.clock = T0
        self.log: list[tuple[ProposedEvent, dt.datetime]] = []
        self.decided: dict[uuid.UUID, DecisionStatus] = {}
        self.tablets = {ENGINEER_A: Tablet(ENGINEER_ON_A), ENGINEER_B: Tablet(ENGINEER_ON_B)}

    # -- the server ---------------------------------------------------------

    def _decide(self, proposal: ProposedEvent, actor: Actor) -> DecisionStatus:
        self.clock += dt.timedelta(minutes=7)
        before = self.state
        effective = clamp_effective_time(
            proposal.occurred_at, self.clock, before.updated_at if before else None, SKEW_TOLERANCE
        )
        causation = None
        if proposal.causation_id is not None and proposal.causation_id in self.decided:
            causation = (self.decided[proposal.causation_id], str(proposal.causation_id))
        outcome = decide(before, proposal, actor, effective, causation)

        assert outcome.status is expected_status(outcome.reason_code), outcome.reason_code
        version_before = before.version if before else 0
        if outcome.reason_code in STALE_REASONS:
            assert proposal.base_version < version_before, (outcome.reason_code, proposal.base_version, version_before)
        if outcome.reason_code is ReasonCode.INVALID_TRANSITION:
            assert proposal.base_version == version_before
        if outcome.status is DecisionStatus.ACCEPTED:
            row = TRANSITION_INDEX[(before.status if before else None, proposal.type)]
            assert actor.role in row.roles
            assert outcome.state is not None
            assert outcome.state.version == version_before + 1
            assert outcome.state.status is (row.to_state or before.status)
            self.log.append((proposal, effective))
            self.state = outcome.state
        else:
            assert outcome.state == before, "a rejected or held event changed the order"
        self.decided[proposal.client_event_id] = outcome.status
        return outcome.status

    def _propose(self, event_type: str, base_version: int, engineer: str | None, causation_id: uuid.UUID | None = None):
        return make_proposal(
            event_type,
            base_version,
            valid_payload(event_type, engineer),
            causation_id=causation_id,
            occurred_at=self.clock + dt.timedelta(minutes=1),
        )

    # -- rules --------------------------------------------------------------

    @rule(event_type=st.sampled_from(OFFICE_TYPES), engineer=st.sampled_from([ENGINEER_A, ENGINEER_B]))
    def dispatcher_acts(self, event_type, engineer):
        self._decide(self._propose(event_type, self.state.version if self.state else 0, engineer), DISPATCHER)

    @rule(event_type=st.sampled_from(MANAGER_TYPES), engineer=st.sampled_from([ENGINEER_A, ENGINEER_B, None]))
    def manager_acts(self, event_type, engineer):
        self._decide(self._propose(event_type, self.state.version if self.state else 0, engineer), MANAGER)

    @precondition(lambda self: self.state is not None)
    @rule(
        engineer=st.sampled_from([ENGINEER_A, ENGINEER_B]),
        event_type=st.sampled_from(ENGINEER_TYPES),
        follows_previous=st.booleans(),
    )
    def tablet_records_offline(self, engineer, event_type, follows_previous):
        tablet = self.tablets[engineer]
        base = tablet.confirmed.version if tablet.confirmed else 0
        causation = tablet.last_recorded if follows_previous else None
        proposal = self._propose(event_type, base, engineer, causation)
        tablet.outbox.append(proposal)
        tablet.last_recorded = proposal.client_event_id
        # The tablet applies its own event at once when its local copy allows it, as the SDK does.
        if tablet.local is not None:
            local = decide(tablet.local, proposal, tablet.actor, proposal.occurred_at)
            if local.status is DecisionStatus.ACCEPTED:
                tablet.local = local.state

    @rule(engineer=st.sampled_from([ENGINEER_A, ENGINEER_B]))
    def tablet_syncs(self, engineer):
        tablet = self.tablets[engineer]
        for proposal in tablet.outbox:
            self._decide(proposal, tablet.actor)
        tablet.outbox.clear()
        tablet.confirmed = self.state
        tablet.local = self.state

    @rule(event_type=st.sampled_from(sorted(EVENT_TYPES)))
    def stale_replay_of_fresh_proposal(self, event_type):
        """Arbitration: a proposal accepted by a stale device is also accepted when sent up to date."""
        if self.state is None or self.state.version < 2:
            return
        stale = self._propose(event_type, 1, ENGINEER_A)
        fresh = self._propose(event_type, self.state.version, ENGINEER_A)
        for actor in (DISPATCHER, MANAGER, ENGINEER_ON_A):
            stale_outcome = decide(self.state, stale, actor, self.clock)
            fresh_outcome = decide(self.state, fresh, actor, self.clock)
            if stale_outcome.status is DecisionStatus.ACCEPTED:
                assert fresh_outcome.status is DecisionStatus.ACCEPTED
                assert fresh_outcome.state == stale_outcome.state

    # -- invariants ---------------------------------------------------------

    @invariant()
    def version_counts_accepted_events(self):
        assert (self.state.version if self.state else 0) == len(self.log)

    @invariant()
    def fold_of_log_equals_state(self):
        folded: WorkOrderState | None = None
        for proposal, effective in self.log:
            row = TRANSITION_INDEX[(folded.status if folded else None, proposal.type)]
            folded = apply_event(folded, WORK_ORDER_ID, parse_payload(proposal.type, proposal.payload), row.to_state, effective)
        assert folded == self.state

    @invariant()
    def effective_times_never_go_back(self):
        times = [effective for _, effective in self.log]
        assert times == sorted(times)


FleetOfOneOrder.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_fleet_of_one_order = FleetOfOneOrder.TestCase
