"""Payload of every event type, keyed by the envelope's `type`.

Each payload is a strict msgspec struct: unknown fields are rejected so that a
typo on a tablet surfaces as a decision instead of silently dropping data.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated

import msgspec

# PostgreSQL text columns cannot store the NUL character, and no field needs it.
NO_NUL = r"^[^\x00]*$"
NonEmptyText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
LongText = Annotated[str, msgspec.Meta(max_length=10_000, pattern=NO_NUL)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class Priority(str, enum.Enum):
    """Urgency of a work order, which selects the SLA targets of its contract."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class HoldReason(str, enum.Enum):
    """Reason for pausing work on site."""

    PARTS = "parts"
    CUSTOMER = "customer"
    ACCESS = "access"
    OTHER = "other"


class MaintenanceType(str, enum.Enum):
    """Kind of maintenance a work order carries out, in EN 13306 terms.

    Corrective maintenance restores an item after a failure. Preventive
    maintenance is planned ahead to lower the chance of a failure.
    """

    CORRECTIVE = "corrective"
    PREVENTIVE = "preventive"


class AttachmentKind(str, enum.Enum):
    PHOTO = "photo"
    DOCUMENT = "document"
    SIGNATURE = "signature"


class Payload(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of all event payloads."""


class Created(Payload):
    title: NonEmptyText
    site_id: Identifier
    asset_id: Identifier | None = None
    contract_id: Identifier | None = None
    priority: Priority = Priority.P3
    description: LongText = ""
    maintenance_type: MaintenanceType = MaintenanceType.CORRECTIVE
    component: Identifier | None = None
    """The part of the asset that failed or is to be serviced, such as a spindle or a controller board."""


class Assigned(Payload):
    engineer_id: Identifier
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None


class Reassigned(Payload):
    engineer_id: Identifier
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None
    reason: LongText = ""


class Unassigned(Payload):
    reason: LongText = ""


class Cancelled(Payload):
    reason: NonEmptyText


class Accepted(Payload):
    pass


class Declined(Payload):
    reason: NonEmptyText


class TravelStarted(Payload):
    pass


class Arrived(Payload):
    pass


class WorkStarted(Payload):
    pass


class HoldStarted(Payload):
    reason: HoldReason
    note: LongText = ""


class WorkResumed(Payload):
    pass


class Completed(Payload):
    summary: LongText = ""
    fixed: bool = True


class Closed(Payload):
    note: LongText = ""


class Reopened(Payload):
    reason: NonEmptyText
    engineer_id: Identifier | None = None


class PriorityChanged(Payload):
    priority: Priority


class NoteAdded(Payload):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]


class PartsUsed(Payload):
    part_number: Identifier
    quantity: Annotated[float, msgspec.Meta(gt=0, le=100_000)]
    description: LongText = ""


class TimeLogged(Payload):
    minutes: Annotated[int, msgspec.Meta(gt=0, le=24 * 60)]
    activity: NonEmptyText = "work"


class AttachmentAdded(Payload):
    sha256: Sha256
    kind: AttachmentKind
    content_type: NonEmptyText
    size_bytes: Annotated[int, msgspec.Meta(ge=0, le=2**40)]
    caption: LongText = ""


class ChecklistItemStatus(str, enum.Enum):
    """Outcome of one checklist item. Schema version 1 had only a `checked` flag, without `not_applicable`."""

    DONE = "done"
    NOT_DONE = "not_done"
    NOT_APPLICABLE = "not_applicable"


class ChecklistUpdated(Payload):
    item: NonEmptyText
    status: ChecklistItemStatus
    note: LongText = ""


class SignatureCaptured(Payload):
    signer_name: NonEmptyText
    sha256: Sha256


class ReviewResolution(str, enum.Enum):
    """Outcome of the office's review of a held event."""

    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class ReviewResolved(Payload):
    """Resolution of an event held for review, named by its proposer's subject and client_event_id.

    Idempotency keys are scoped per subject, so the pair identifies one
    held event. The length limit of `subject` is the one the token verifier
    applies to `sub`.
    """

    client_event_id: uuid.UUID
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=NO_NUL)]
    resolution: ReviewResolution
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]


class SlaClock(str, enum.Enum):
    """SLA clock that a server-origin SLA event is about."""

    RESPONSE = "response"
    RESOLUTION = "resolution"


class SlaCrossing(Payload):
    """A mark of an SLA clock that the server saw the clock run past."""

    clock: SlaClock
    cycle: Annotated[int, msgspec.Meta(ge=1)]
    due_at: AwareDatetime | None
    """Due instant at recording time; None while a pause holds the clock before its target."""
    crossed_at: AwareDatetime
    crossing_key: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
    """Identity of the crossing without its instant, such as `1/resolution/warning/0.75`."""


class SlaWarning(SlaCrossing):
    threshold: Annotated[float, msgspec.Meta(gt=0, lt=1)]
    """Fraction of the target that was reached."""


class SlaBreached(SlaCrossing):
    pass


EVENT_PAYLOADS: dict[str, type[Payload]] = {
    "created": Created,
    "assigned": Assigned,
    "reassigned": Reassigned,
    "unassigned": Unassigned,
    "cancelled": Cancelled,
    "accepted": Accepted,
    "declined": Declined,
    "travel_started": TravelStarted,
    "arrived": Arrived,
    "work_started": WorkStarted,
    "hold_started": HoldStarted,
    "work_resumed": WorkResumed,
    "completed": Completed,
    "closed": Closed,
    "reopened": Reopened,
    "priority_changed": PriorityChanged,
    "note_added": NoteAdded,
    "parts_used": PartsUsed,
    "time_logged": TimeLogged,
    "attachment_added": AttachmentAdded,
    "checklist_updated": ChecklistUpdated,
    "signature_captured": SignatureCaptured,
    "review_resolved": ReviewResolved,
    "sla_warning": SlaWarning,
    "sla_breached": SlaBreached,
}

EVENT_TYPES = tuple(EVENT_PAYLOADS)
