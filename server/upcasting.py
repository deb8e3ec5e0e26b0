"""Upcasters: convert events written in an older schema version into the current layout.

The event log is append-only, so an event keeps the layout it was stored
with. Every reader of stored events decodes them through
`decode_recorded_event`, and ingestion converts a proposal from an older
client through `upcast_proposal` before deciding it, so the decision
function and the projections only ever see `SCHEMA_VERSION` payloads.

An upcaster takes the payload of one event type at version N and returns
it at version N + 1. An event type that did not change between two versions
has no entry, and its payload passes through unchanged.

NOTE: the `proposal` stored with each decision keeps the layout it arrived
in, so the review queue shows the payload of an old client as it was sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from shared_schema import SCHEMA_VERSION, PayloadError, ProposedEvent, RecordedEvent
from shared_schema.payloads import LongText, NonEmptyText, Payload

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_decode_event = msgspec.json.Decoder(RecordedEvent).decode


def _checklist_checked_to_status(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace version 1's `checked` flag with version 2's `status`.

    A payload whose `checked` is missing or not a boolean is left as it is,
    so the decision rejects it as an invalid payload that names the field.
    """
    checked = payload.get("checked")
    if not isinstance(checked, bool):
        return payload
    upgraded = {key: value for key, value in payload.items() if key != "checked"}
    upgraded["status"] = "done" if checked else "not_done"
    return upgraded


class ChecklistUpdatedV1(Payload):
    """Payload of `checklist_updated` in schema version 1, before `checked` became `status`."""

    item: NonEmptyText
    checked: bool
    note: LongText = ""


# (event type, version) -> strict payload struct of that older version. A
# proposal in an older version is checked against it before it is upcast, so
# a field of a later layout in an older event is rejected, not converted.
LEGACY_PAYLOADS: dict[tuple[str, int], type[Payload]] = {
    ("checklist_updated", 1): ChecklistUpdatedV1,
}

# Converting through a holder struct makes msgspec name `$.payload` for a missing or unknown field.
_LEGACY_HOLDERS: dict[tuple[str, int], type[msgspec.Struct]] = {
    key: msgspec.defstruct(f"{layout.__name__}Holder", [("payload", layout)], module=__name__)
    for key, layout in LEGACY_PAYLOADS.items()
}

# (event type, version it converts from) -> upcaster to the next version.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("checklist_updated", 1): _checklist_checked_to_status,
}

for _event_type, _from_version in UPCASTERS:
    if not 1 <= _from_version < SCHEMA_VERSION:
        raise RuntimeError(
            f"upcaster for {_event_type!r} converts from version {_from_version}, "
            f"but only versions 1 to {SCHEMA_VERSION - 1} can be upcast"
        )


def upcast_payload(event_type: str, payload: dict[str, Any], from_version: int) -> dict[str, Any]:
    """Apply every upcaster of `event_type` from `from_version` up to `SCHEMA_VERSION`, in order."""
    for version in range(from_version, SCHEMA_VERSION):
        upcaster = UPCASTERS.get((event_type, version))
        if upcaster is not None:
            payload = upcaster(payload)
    return payload


def check_legacy_payload(event_type: str, payload: dict[str, Any], from_version: int) -> None:
    """Decode `payload` strictly in the layout of each version from `from_version` up to the current one.

    Raises PayloadError whose message ends with the path of the invalid
    value, such as `$.payload.checked`, or `$.payload` for a missing or
    unknown field. The check of a version runs on the payload upcast to it.
    """
    for version in range(from_version, SCHEMA_VERSION):
        holder = _LEGACY_HOLDERS.get((event_type, version))
        if holder is not None:
            try:
                msgspec.convert({"payload": payload}, holder)
            except msgspec.ValidationError as exc:
                raise PayloadError(f"{exc} (schema version {version})") from exc
        upcaster = UPCASTERS.get((event_type, version))
        if upcaster is not None:
            payload = upcaster(payload)


def upcast_proposal(event: ProposedEvent, *, strict: bool = False) -> ProposedEvent:
    """Return the proposal in the current layout; a current or newer one is returned unchanged.

    With `strict`, an older payload must match its version's layout, or
    PayloadError is raised. Ingestion is strict. Readers of stored proposals
    are not, so a proposal stored before the check still reads.
    """
    if event.schema_version >= SCHEMA_VERSION:
        return event
    if strict:
        check_legacy_payload(event.type, event.payload, event.schema_version)
    payload = upcast_payload(event.type, event.payload, event.schema_version)
    return msgspec.structs.replace(event, payload=payload, schema_version=SCHEMA_VERSION)


def upcast_recorded(event: RecordedEvent) -> RecordedEvent:
    if event.schema_version >= SCHEMA_VERSION:
        return event
    payload = upcast_payload(event.type, event.payload, event.schema_version)
    return msgspec.structs.replace(event, payload=payload, schema_version=SCHEMA_VERSION)


def decode_recorded_event(raw: bytes | str) -> RecordedEvent:
    """Decode a stored event and bring it to the current layout."""
    return upcast_recorded(_decode_event(raw))
