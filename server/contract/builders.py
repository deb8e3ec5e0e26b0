"""Valid payloads and fixed instants for building proposals, shared by the vectors and the tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

T0 = dt.datetime(2024, 3, 4, 8, 0, tzinfo=dt.timezone.utc)
WORK_ORDER_ID = "wo-1"
ENGINEER_A = "eng-a"
ENGINEER_B = "eng-b"
UNKNOWN_TYPE = "teleported"
ATTACHMENT_SHA256 = "ab" * 32


def valid_payload(event_type: str, engineer_id: str | None = ENGINEER_A) -> dict[str, Any]:
    """Build a payload that the schema of `event_type` accepts.

    `engineer_id` goes into the assignment payloads. For `reopened`, None
    leaves the field out, so the order keeps its engineer.
    """
    payloads: dict[str, dict[str, Any]] = {
        "created": {"title": "Spindle overheats", "site_id": "site-1", "priority": "P2"},
        "assigned": {"engineer_id": engineer_id or ENGINEER_A},
        "reassigned": {"engineer_id": engineer_id or ENGINEER_A, "reason": "closer engineer"},
        "unassigned": {"reason": "engineer ill"},
        "cancelled": {"reason": "customer cancelled"},
        "accepted": {},
        "declined": {"reason": "no skill for this controller"},
        "travel_started": {},
        "arrived": {},
        "work_started": {},
        "hold_started": {"reason": "parts"},
        "work_resumed": {},
        "completed": {"summary": "replaced fan", "fixed": True},
        "closed": {"note": "reviewed"},
        "reopened": {"reason": "fault came back"},
        "priority_changed": {"priority": "P1"},
        "note_added": {"text": "coolant low"},
        "parts_used": {"part_number": "FAN-120", "quantity": 1},
        "time_logged": {"minutes": 45},
        "attachment_added": {"sha256": ATTACHMENT_SHA256, "kind": "photo", "content_type": "image/jpeg", "size_bytes": 2048},
        "checklist_updated": {"item": "guards refitted", "status": "done"},
        "signature_captured": {"signer_name": "R. Meyer", "sha256": ATTACHMENT_SHA256},
        "review_resolved": {
            "client_event_id": "5d2c3f0e-8b1a-4c47-9e0d-3a6f1b2c4d5e",
            "subject": "e-17",
            "resolution": "accepted",
            "note": "work confirmed by phone",
        },
        "sla_warning": {
            "clock": "response",
            "cycle": 1,
            "threshold": 0.5,
            "due_at": "2024-06-17T08:00:00+00:00",
            "crossed_at": "2024-06-14T15:00:00+00:00",
            "crossing_key": "1/response/warning/0.5",
        },
        "sla_breached": {
            "clock": "response",
            "cycle": 1,
            "due_at": "2024-06-17T08:00:00+00:00",
            "crossed_at": "2024-06-17T08:00:00+00:00",
            "crossing_key": "1/response/breach/1.0",
        },
        UNKNOWN_TYPE: {},
    }
    payload = dict(payloads[event_type])
    if event_type == "reopened" and engineer_id is not None:
        payload["engineer_id"] = engineer_id
    return payload


def invalid_payload(event_type: str) -> dict[str, Any]:
    """Build a payload that the schema of `event_type` rejects: a field no payload has."""
    return {**valid_payload(event_type), "unexpected_field": 1}
