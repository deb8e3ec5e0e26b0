"""Deciding a batch of proposed events, independent of the store.

A store loads what the batch needs in one read (current states, earlier
decisions of the same subject, the decisions the batch's causation ids point
to, the held events its `review_resolved` proposals name), calls
`plan_batch`, and writes the plan in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable

import msgspec

from shared_schema import (
    Actor,
    DecisionStatus,
    EventDecision,
    HeldReview,
    PayloadError,
    ProposedEvent,
    ReasonCode,
    RecordedEvent,
    TimelineEntry,
    WorkOrderState,
    clamp_effective_time,
    content_fingerprint,
    decide,
    parse_payload,
)
from shared_schema.decision import reject_invalid_payload
from shared_schema.payloads import ReviewResolved
from shared_schema.reasons import REASON_SENTENCES

from .projections.fold import event_audience, timeline_entry
from .upcasting import upcast_proposal


@dataclasses.dataclass(frozen=True)
class StoredDecision:
    fingerprint: bytes
    decision: EventDecision


@dataclasses.dataclass(frozen=True)
class NewDecision:
    """A decision made by this batch, with what the store needs to record it."""

    decision: EventDecision
    proposal: ProposedEvent
    fingerprint: bytes
    actor: Actor


@dataclasses.dataclass(frozen=True)
class NewEvent:
    """An accepted event and the engineers who may see it in the pull feed."""

    event: RecordedEvent
    audience: frozenset[str]


@dataclasses.dataclass
class BatchPlan:
    responses: list[EventDecision] = dataclasses.field(default_factory=list)
    decisions: list[NewDecision] = dataclasses.field(default_factory=list)
    events: list[NewEvent] = dataclasses.field(default_factory=list)
    states: dict[str, WorkOrderState] = dataclasses.field(default_factory=dict)
    timeline: list[TimelineEntry] = dataclasses.field(default_factory=list)


# A held event is named by its proposer's subject and client_event_id.
ReviewKey = tuple[str, uuid.UUID]


def causation_ids(events: Iterable[ProposedEvent]) -> list[uuid.UUID]:
    return [event.causation_id for event in events if event.causation_id is not None]


def review_key(proposal: ProposedEvent) -> ReviewKey | None:
    """Return the held event a `review_resolved` proposal names, None for other types or an invalid payload."""
    if proposal.type != "review_resolved":
        return None
    try:
        payload = parse_payload(proposal.type, proposal.payload)
    except PayloadError:
        return None
    assert isinstance(payload, ReviewResolved)
    return payload.subject, payload.client_event_id


def review_keys(events: Iterable[ProposedEvent]) -> list[ReviewKey]:
    """Return the distinct held events that the batch's `review_resolved` proposals name."""
    keys = (review_key(event) for event in events)
    return sorted({key for key in keys if key is not None})


def plan_batch(
    events: list[ProposedEvent],
    actor: Actor,
    recorded_at: dt.datetime,
    skew_tolerance: dt.timedelta,
    states: dict[str, WorkOrderState],
    prior: dict[uuid.UUID, StoredDecision],
    causations: dict[uuid.UUID, DecisionStatus],
    next_position: Callable[[], int],
    reviews: dict[ReviewKey, HeldReview] | None = None,
) -> BatchPlan:
    """Decide every event in order, each seeing the effect of the ones before it.

    The maps passed in are updated as the batch goes, so a repeated
    `client_event_id` inside one batch is a replay of its first occurrence, a
    causation id may point to an event earlier in the same batch, and a
    second resolution of one review in the same batch finds the first.
    `reviews` maps the keys of `review_keys(events)` to the decisions found.
    """
    if reviews is None:
        reviews = {}
    plan = BatchPlan()
    for proposal in events:
        fingerprint = content_fingerprint(proposal)
        earlier = prior.get(proposal.client_event_id)
        if earlier is not None:
            plan.responses.append(_replay_or_reuse(earlier, proposal, fingerprint, states, recorded_at))
            continue

        # The fingerprint and the stored proposal keep the layout the client sent,
        # so a retry of an older client still matches. Deciding uses the current layout.
        sent = proposal
        try:
            proposal = upcast_proposal(sent, strict=True)
            legacy_error = None
        except PayloadError as exc:
            legacy_error = str(exc)
        state = states.get(proposal.work_order_id)
        causation = None
        if proposal.causation_id is not None and proposal.causation_id in causations:
            causation = (causations[proposal.causation_id], str(proposal.causation_id))
        effective = clamp_effective_time(
            proposal.occurred_at, recorded_at, state.updated_at if state else None, skew_tolerance
        )
        key = review_key(proposal)
        review = reviews.get(key) if key is not None else None
        if legacy_error is None:
            outcome = decide(state, proposal, actor, effective, causation, review)
        else:
            outcome = reject_invalid_payload(proposal, actor, state, legacy_error)

        recorded: RecordedEvent | None = None
        if outcome.status is DecisionStatus.ACCEPTED:
            assert outcome.state is not None
            recorded = RecordedEvent(
                event_id=uuid.uuid4(),
                global_position=next_position(),
                stream_version=outcome.state.version,
                client_event_id=proposal.client_event_id,
                work_order_id=proposal.work_order_id,
                type=proposal.type,
                payload=proposal.payload,
                occurred_at=proposal.occurred_at,
                effective_time=effective,
                recorded_at=recorded_at,
                base_version=proposal.base_version,
                device_id=proposal.device_id,
                actor=actor.subject,
                actor_role=actor.role.value,
                correlation_id=proposal.correlation_id,
                causation_id=proposal.causation_id,
            )
            plan.events.append(NewEvent(event=recorded, audience=event_audience(state, outcome.state)))
            states[proposal.work_order_id] = outcome.state
            plan.states[proposal.work_order_id] = outcome.state
            if isinstance(outcome.payload, ReviewResolved) and key is not None and review is not None:
                reviews[key] = msgspec.structs.replace(review, resolution=outcome.payload.resolution)

        decision = EventDecision(
            client_event_id=proposal.client_event_id,
            work_order_id=proposal.work_order_id,
            status=outcome.status,
            reason_code=outcome.reason_code,
            message=outcome.message,
            work_order_status=outcome.state.status if outcome.state else None,
            work_order_version=outcome.state.version if outcome.state else 0,
            decided_at=recorded_at,
            event_id=recorded.event_id if recorded else None,
            stream_version=recorded.stream_version if recorded else None,
            global_position=recorded.global_position if recorded else None,
        )
        plan.responses.append(decision)
        plan.decisions.append(NewDecision(decision=decision, proposal=sent, fingerprint=fingerprint, actor=actor))
        plan.timeline.append(timeline_entry(decision, proposal, actor, recorded_at, effective if recorded else None))
        prior[proposal.client_event_id] = StoredDecision(fingerprint=fingerprint, decision=decision)
        causations[proposal.client_event_id] = decision.status
    return plan


def _replay_or_reuse(
    earlier: StoredDecision,
    proposal: ProposedEvent,
    fingerprint: bytes,
    states: dict[str, WorkOrderState],
    recorded_at: dt.datetime,
) -> EventDecision:
    if earlier.fingerprint == fingerprint:
        return msgspec.structs.replace(earlier.decision, replay=True)
    # The stored decision stays as it is. This proposal gets a response but is not recorded,
    # because its id already names another event.
    state = states.get(proposal.work_order_id)
    return EventDecision(
        client_event_id=proposal.client_event_id,
        work_order_id=proposal.work_order_id,
        status=DecisionStatus.REJECTED,
        reason_code=ReasonCode.IDEMPOTENCY_KEY_REUSED,
        message=REASON_SENTENCES[ReasonCode.IDEMPOTENCY_KEY_REUSED],
        work_order_status=state.status if state else None,
        work_order_version=state.version if state else 0,
        decided_at=recorded_at,
    )


def renumber_positions(plan: BatchPlan, first_position: int) -> None:
    """Give the plan's accepted events consecutive global positions from `first_position`.

    Stores that reserve positions only after deciding (to hold the position
    lock for as short a time as possible) plan with placeholders and call
    this before writing. Events, decisions, responses and timeline entries
    are updated in place. A response that replays a decision made earlier in
    the same batch is a copy, so it is updated too.
    """
    positions = {item.event.client_event_id: first_position + index for index, item in enumerate(plan.events)}
    for item in plan.events:
        item.event.global_position = positions[item.event.client_event_id]
    for new in plan.decisions:
        if new.decision.global_position is not None:
            new.decision.global_position = positions[new.decision.client_event_id]
    for response in plan.responses:
        # A replay of a decision stored by an earlier batch keeps its position.
        if response.global_position is not None and response.client_event_id in positions:
            response.global_position = positions[response.client_event_id]
    for entry in plan.timeline:
        if entry.global_position is not None:
            entry.global_position = positions[entry.client_event_id]
