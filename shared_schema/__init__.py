"""Contract shared by the server and the client SDK: messages, state machine, arbitration.

Pure code on msgspec alone: no clock, no I/O, no logging.
"""

from .blobs import BlobUploadRequest, BlobUploadStatus
from .decision import Actor, Arbitration, clamp_effective_time, decide
from .messages import ChangesPage, DecisionBatch, EventBatch, EventDecision, TimelineEntry, WorkOrderPage
from .envelope import (
    LEGACY_SCHEMA_VERSION,
    SCHEMA_VERSION,
    TYPED_EVENTS,
    PayloadError,
    ProposedEvent,
    RecordedEvent,
    TypedEvent,
    content_fingerprint,
    parse_payload,
)
from .payloads import EVENT_PAYLOADS, EVENT_TYPES, AttachmentKind, HoldReason, MaintenanceType, Priority
from .reviews import HeldReview
from .reasons import REASON_SENTENCES, REASON_STATUS, DecisionStatus, ReasonCode
from .states import ACTIVE_STATES, HUMAN_ROLES, OPEN_STATES, PRE_WORK_STATES, TERMINAL_STATES, Role, WorkOrderStatus
from .transitions import FIELD_WORK_TYPES, SERVER_ORIGIN_TYPES, TRANSITION_INDEX, TRANSITIONS, Transition, transition_table_json
from .work_order import WorkOrderState, apply_event

__all__ = [
    "BlobUploadRequest",
    "BlobUploadStatus",
    "ChangesPage",
    "DecisionBatch",
    "EventBatch",
    "EventDecision",
    "TimelineEntry",
    "WorkOrderPage",
    "ACTIVE_STATES",
    "EVENT_PAYLOADS",
    "EVENT_TYPES",
    "FIELD_WORK_TYPES",
    "HUMAN_ROLES",
    "LEGACY_SCHEMA_VERSION",
    "OPEN_STATES",
    "PRE_WORK_STATES",
    "REASON_SENTENCES",
    "REASON_STATUS",
    "SCHEMA_VERSION",
    "SERVER_ORIGIN_TYPES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "TRANSITION_INDEX",
    "TYPED_EVENTS",
    "Actor",
    "Arbitration",
    "AttachmentKind",
    "DecisionStatus",
    "HeldReview",
    "HoldReason",
    "MaintenanceType",
    "PayloadError",
    "Priority",
    "ProposedEvent",
    "ReasonCode",
    "RecordedEvent",
    "Role",
    "Transition",
    "TypedEvent",
    "WorkOrderState",
    "WorkOrderStatus",
    "apply_event",
    "clamp_effective_time",
    "content_fingerprint",
    "decide",
    "parse_payload",
    "transition_table_json",
]
