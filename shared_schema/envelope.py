"""Event envelopes: what a device proposes and what the server records."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Union

import msgspec

from .payloads import EVENT_PAYLOADS, NO_NUL, Identifier, Payload

# Version of the event layout that this code reads and writes. Version 2
# replaced the `checked` flag of `checklist_updated` with a `status`.
SCHEMA_VERSION = 2
# The version of an event that carries no `schema_version`: clients written
# before the field existed sent version 1 layouts.
LEGACY_SCHEMA_VERSION = 1

AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Version = Annotated[int, msgspec.Meta(ge=0)]
CorrelationId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
SchemaVersion = Annotated[int, msgspec.Meta(ge=1)]


class ProposedEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An event as a device proposes it.

    `payload` stays a plain mapping here so that an unknown `type` or a bad
    payload becomes a REJECTED decision for this event alone, while a broken
    envelope makes the whole request unreadable.
    """

    client_event_id: uuid.UUID
    work_order_id: Identifier
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
    payload: dict[str, Any] = {}
    occurred_at: AwareDatetime
    base_version: Version
    device_id: Identifier
    correlation_id: CorrelationId | None = None
    causation_id: uuid.UUID | None = None
    schema_version: SchemaVersion = LEGACY_SCHEMA_VERSION


class RecordedEvent(msgspec.Struct, kw_only=True):
    """An accepted event as stored in the append-only log."""

    event_id: uuid.UUID
    global_position: int
    stream_version: int
    client_event_id: uuid.UUID
    work_order_id: str
    type: str
    payload: dict[str, Any]
    occurred_at: dt.datetime
    effective_time: dt.datetime
    recorded_at: dt.datetime
    base_version: int
    device_id: str
    actor: str
    actor_role: str
    correlation_id: str | None = None
    causation_id: uuid.UUID | None = None
    schema_version: int = SCHEMA_VERSION


class _TypedEnvelope(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    client_event_id: uuid.UUID
    work_order_id: Identifier
    occurred_at: AwareDatetime
    base_version: Version
    device_id: Identifier
    correlation_id: CorrelationId | None = None
    causation_id: uuid.UUID | None = None
    schema_version: SchemaVersion = LEGACY_SCHEMA_VERSION


def _typed_envelope(event_type: str, payload_type: type[Payload]) -> type[_TypedEnvelope]:
    class_name = "".join(part.title() for part in event_type.split("_")) + "Event"
    return msgspec.defstruct(
        class_name,
        [("payload", payload_type)],
        bases=(_TypedEnvelope,),
        tag=event_type,
        module=__name__,
    )


# One struct per event type, tagged on `type`. Ports use this union (through the
# exported JSON Schema) to validate an event with its payload in a single step.
TYPED_EVENTS: dict[str, type[_TypedEnvelope]] = {
    event_type: _typed_envelope(event_type, payload_type) for event_type, payload_type in EVENT_PAYLOADS.items()
}
TypedEvent = Union[tuple(TYPED_EVENTS.values())]  # type: ignore[valid-type]


class PayloadError(ValueError):
    """A payload that does not match the schema of its event type."""


def _payload_holder(event_type: str, payload_type: type[Payload]) -> type[msgspec.Struct]:
    class_name = "".join(part.title() for part in event_type.split("_")) + "PayloadHolder"
    return msgspec.defstruct(class_name, [("payload", payload_type)], module=__name__)


# One struct per event type whose only field is the payload. Converting through
# it makes msgspec report every error path from `$.payload`, including a missing
# or unknown field of the payload object itself, which has no path otherwise.
_PAYLOAD_HOLDERS: dict[str, type[msgspec.Struct]] = {
    event_type: _payload_holder(event_type, payload_type) for event_type, payload_type in EVENT_PAYLOADS.items()
}


def parse_payload(event_type: str, payload: dict[str, Any]) -> Payload:
    """Convert a raw payload into the struct of its event type.

    Raises KeyError for an unknown type and PayloadError for an invalid
    payload. The error message ends with the path of the invalid value, such
    as `$.payload.engineer_id`, or `$.payload` for a missing or unknown field.
    """
    holder_type = _PAYLOAD_HOLDERS[event_type]
    try:
        holder = msgspec.convert({"payload": payload}, holder_type)
    except msgspec.ValidationError as exc:
        raise PayloadError(str(exc)) from exc
    return holder.payload  # type: ignore[attr-defined]


def content_fingerprint(event: ProposedEvent) -> bytes:
    """Encode the fields that define an event's content, in a canonical order.

    Two proposals with the same `client_event_id` are the same event only when
    their fingerprints are equal. The correlation id is left out because it
    traces a request, and a retry may carry a new one. A `schema_version` of
    1 is left out too, so an event stored before the field existed keeps the
    fingerprint it was stored with.
    """
    fields = msgspec.structs.asdict(msgspec.structs.replace(event, correlation_id=None))
    if event.schema_version == LEGACY_SCHEMA_VERSION:
        del fields["schema_version"]
    return msgspec.json.encode(fields, order="sorted")
