"""Replaying the log (decisions joined with their accepted events) into projection rows."""

from __future__ import annotations

import dataclasses

import msgspec

from shared_schema import (
    Actor,
    DecisionStatus,
    EventDecision,
    ProposedEvent,
    RecordedEvent,
    Role,
    TimelineEntry,
    WorkOrderState,
)

from ..upcasting import decode_recorded_event, upcast_proposal
from ..kpi_projection.rows import HistoryRow, history_row
from .fold import ReplayError, apply_recorded_event, event_audience, timeline_entry
from .names import EVENT_AUDIENCE, KPI_ORDER_HISTORY, WORK_ORDER_TIMELINE

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode
_decode_decision = msgspec.json.Decoder(EventDecision).decode
_decode_event = decode_recorded_event


@dataclasses.dataclass(frozen=True)
class LogRow:
    """One decision of the log, as JSON text or bytes straight from the store.

    `event` is the recorded event that the decision's `global_position`
    points to, None for a decision that was not accepted.
    """

    decision_id: int
    subject: str
    actor_role: str
    proposal: bytes | str
    decision: bytes | str
    event: bytes | str | None


@dataclasses.dataclass
class ProjectionRows:
    """Rows that one batch of the log adds to the projections.

    `states` contains the final state of every order the batch changed.
    `timeline` pairs each entry with its decision id, which orders the
    entries the way ingestion inserted them. `audience` contains
    (engineer id, global position) pairs. `kpi_history` contains the
    `kpi_order_history` rows of the batch's accepted events.
    """

    states: dict[str, WorkOrderState] = dataclasses.field(default_factory=dict)
    timeline: list[tuple[int, TimelineEntry]] = dataclasses.field(default_factory=list)
    audience: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    kpi_history: list[HistoryRow] = dataclasses.field(default_factory=list)
    events: int = 0


class Replayer:
    """Fold log rows, in decision order, into the rows of the selected projections.

    The current state of every order stays in memory, because the next event
    of an order needs it, so memory grows with the number of orders and not
    with the length of the log. Decision order is the order of accepted
    events within each order on both stores: appends to one order are
    serialised and write their decisions in the order they were decided.
    """

    def __init__(self, projections: tuple[str, ...]) -> None:
        self.projections = projections
        self.states: dict[str, WorkOrderState] = {}
        self.last_decision_id = 0
        self.decisions = 0
        self.events = 0

    def fold(self, rows: list[LogRow]) -> ProjectionRows:
        """Fold one batch and return the rows it adds; raise ReplayError on a log this code cannot replay."""
        result = ProjectionRows()
        build_timeline = WORK_ORDER_TIMELINE in self.projections
        build_audience = EVENT_AUDIENCE in self.projections
        build_kpi_history = KPI_ORDER_HISTORY in self.projections
        for row in rows:
            if row.decision_id <= self.last_decision_id:
                raise ReplayError(f"decision {row.decision_id} arrived after decision {self.last_decision_id}")
            self.last_decision_id = row.decision_id
            self.decisions += 1

            recorded: RecordedEvent | None = None
            if row.event is not None:
                recorded = _decode_event(row.event)
                before = self.states.get(recorded.work_order_id)
                after = apply_recorded_event(before, recorded)
                if after.version != recorded.stream_version:
                    raise ReplayError(
                        f"event {recorded.event_id} has stream version {recorded.stream_version}, "
                        f"but replaying the log gives version {after.version}"
                    )
                self.states[recorded.work_order_id] = after
                result.states[recorded.work_order_id] = after
                result.events += 1
                self.events += 1
                if build_audience:
                    position = recorded.global_position
                    result.audience.extend((engineer, position) for engineer in sorted(event_audience(before, after)))
                if build_kpi_history:
                    kpi_row = history_row(recorded)
                    if kpi_row is not None:
                        result.kpi_history.append(kpi_row)

            if build_timeline:
                decision = _decode_decision(row.decision)
                if decision.status is DecisionStatus.ACCEPTED and recorded is None:
                    raise ReplayError(f"accepted decision {row.decision_id} points to no event in the log")
                actor = Actor(subject=row.subject, role=Role(row.actor_role))
                effective = recorded.effective_time if recorded is not None else None
                # The live timeline shows an older client's proposal in the current layout, and so does the rebuild.
                proposal = upcast_proposal(_decode_proposal(row.proposal))
                entry = timeline_entry(decision, proposal, actor, decision.decided_at, effective)
                result.timeline.append((row.decision_id, entry))
        return result
