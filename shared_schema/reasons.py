"""Decision statuses and reason codes, each with a sentence for dispatchers."""

from __future__ import annotations

import enum


class DecisionStatus(str, enum.Enum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


class ReasonCode(str, enum.Enum):
    """Machine-readable cause of a decision."""

    APPLIED = "applied"
    # Rejections of an up-to-date or malformed proposal.
    INVALID_TRANSITION = "invalid_transition"
    ROLE_NOT_ALLOWED = "role_not_allowed"
    ENGINEER_NOT_ASSIGNED = "engineer_not_assigned"
    UNKNOWN_WORK_ORDER = "unknown_work_order"
    WORK_ORDER_EXISTS = "work_order_exists"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_PAYLOAD = "invalid_payload"
    BASE_VERSION_AHEAD = "base_version_ahead"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    CAUSATION_REJECTED = "causation_rejected"
    # Rejections of a review resolution.
    REVIEW_NOT_FOUND = "review_not_found"
    REVIEW_ALREADY_RESOLVED = "review_already_resolved"
    # Rejections of a stale proposal: the server's state wins.
    SUPERSEDED = "superseded"
    CANCELLED_MEANWHILE = "cancelled_meanwhile"
    REASSIGNED_MEANWHILE = "reassigned_meanwhile"
    CLOSED_MEANWHILE = "closed_meanwhile"
    # Field work that collided with a dispatcher's change while offline.
    WORK_ON_CANCELLED_ORDER = "work_on_cancelled_order"
    WORK_ON_REASSIGNED_ORDER = "work_on_reassigned_order"
    WORK_ON_CLOSED_ORDER = "work_on_closed_order"
    CAUSATION_IN_REVIEW = "causation_in_review"


# Sentence templates. Placeholders come from the decision's context:
# {type}, {state}, {version}, {base_version}, {role}, {engineer}, {detail}.
REASON_SENTENCES: dict[ReasonCode, str] = {
    ReasonCode.APPLIED: "Event {type} was applied. The order is now {state} at version {version}.",
    ReasonCode.INVALID_TRANSITION: "Event {type} is not allowed while the order is {state}.",
    ReasonCode.ROLE_NOT_ALLOWED: "Role {role} may not record event {type} while the order is {state}.",
    ReasonCode.ENGINEER_NOT_ASSIGNED: "Only the assigned engineer ({engineer}) may record event {type} on this order.",
    ReasonCode.UNKNOWN_WORK_ORDER: "No work order with this id exists. Create it before recording event {type}.",
    ReasonCode.WORK_ORDER_EXISTS: "A work order with this id already exists (state {state}, version {version}).",
    ReasonCode.UNKNOWN_EVENT_TYPE: "Event type {type!r} is not known to this server.",
    ReasonCode.INVALID_PAYLOAD: "Event {type} has an invalid payload: {detail}.",
    ReasonCode.BASE_VERSION_AHEAD: (
        "The device claims to have seen version {base_version}, but the order is only at version {version}."
    ),
    ReasonCode.IDEMPOTENCY_KEY_REUSED: (
        "This client_event_id was already used for a different event. Make a new id for new content."
    ),
    ReasonCode.CAUSATION_REJECTED: "The event it follows ({detail}) was rejected, so event {type} was not applied.",
    ReasonCode.REVIEW_NOT_FOUND: (
        "No event waiting for review on this order has {detail}. Check the id, the proposer's subject and the order."
    ),
    ReasonCode.REVIEW_ALREADY_RESOLVED: (
        "The review of the event with {detail}. A review is resolved only once."
    ),
    ReasonCode.SUPERSEDED: (
        "The order changed after the device last saw it at version {base_version}. It is now {state} "
        "at version {version}, where event {type} is not allowed."
    ),
    ReasonCode.CANCELLED_MEANWHILE: "The order was cancelled after the device last saw it, so event {type} was not applied.",
    ReasonCode.REASSIGNED_MEANWHILE: (
        "The order was reassigned to {engineer} after the device last saw it, so event {type} was not applied."
    ),
    ReasonCode.CLOSED_MEANWHILE: "The order was closed after the device last saw it, so event {type} was not applied.",
    ReasonCode.WORK_ON_CANCELLED_ORDER: (
        "Field work ({type}) was recorded on an order that was cancelled meanwhile. A dispatcher must review it."
    ),
    ReasonCode.WORK_ON_REASSIGNED_ORDER: (
        "Field work ({type}) was recorded on an order that was reassigned to {engineer} meanwhile. "
        "A dispatcher must review it."
    ),
    ReasonCode.WORK_ON_CLOSED_ORDER: (
        "Field work ({type}) was recorded on an order that was closed meanwhile. A dispatcher must review it."
    ),
    ReasonCode.CAUSATION_IN_REVIEW: (
        "The event it follows ({detail}) is waiting for review, so event {type} waits for review too."
    ),
}

REASON_STATUS: dict[ReasonCode, DecisionStatus] = {
    code: (
        DecisionStatus.ACCEPTED
        if code is ReasonCode.APPLIED
        else DecisionStatus.NEEDS_REVIEW
        if code
        in (
            ReasonCode.WORK_ON_CANCELLED_ORDER,
            ReasonCode.WORK_ON_REASSIGNED_ORDER,
            ReasonCode.WORK_ON_CLOSED_ORDER,
            ReasonCode.CAUSATION_IN_REVIEW,
        )
        else DecisionStatus.REJECTED
    )
    for code in ReasonCode
}
