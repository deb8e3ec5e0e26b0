"""Checks that `record()` runs on an event before storing it, with the server's own payload decoding."""

from __future__ import annotations

import re

from shared_schema import EVENT_PAYLOADS, PayloadError, ProposedEvent, parse_payload

from .errors import InvalidEvent

# msgspec ends each validation message with the path of the value at fault.
_PATH_SUFFIX = re.compile(r" - at `(?P<path>\$[^`]*)`$")


def check_payload(event: ProposedEvent) -> None:
    """Raise InvalidEvent unless `event.type` is a known event type and its payload matches that type's struct.

    `event.payload` must be the JSON-decoded payload, so the check sees the
    same values as the server. An unknown field, a wrong type, a missing
    field and a value over its length limit all raise.
    """
    if event.type not in EVENT_PAYLOADS:
        known = ", ".join(sorted(EVENT_PAYLOADS))
        raise InvalidEvent(
            f"unknown event type {event.type!r} for work order {event.work_order_id!r}; known types: {known}",
            field="type",
        )
    try:
        parse_payload(event.type, event.payload)
    except PayloadError as exc:
        detail = str(exc)
        match = _PATH_SUFFIX.search(detail)
        raise InvalidEvent(
            f"invalid payload for event {event.type!r} on work order {event.work_order_id!r}: {detail}",
            field=match.group("path") if match else "$.payload",
        ) from exc
