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

from shared_schema import SCHEMA_VERSION, ProposedEvent, RecordedEvent

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


def upcast_proposal(event: ProposedEvent) -> ProposedEvent:
    """Return the proposal in the current layout; a current or newer one is returned unchanged."""
    if event.schema_version >= SCHEMA_VERSION:
        return event
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
