"""Builders for raw JSON event bodies and small wrappers around the HTTP API.

The tests send plain dictionaries, as curl would, so they exercise the
server's own decoding instead of the contract's encoder.
"""

from __future__ import annotations

import datetime as dt
import ssl
import uuid
from typing import Any

import httpx
from conftest import LiveServer

from server.upcasting import LEGACY_PAYLOADS
from shared_schema import SCHEMA_VERSION

DEVICE = "tablet-1"

# httpx builds a new SSL context for every client, about 0.1 s each. The tests
# speak plain HTTP to loopback, so all their clients share this one.
_SSL_CONTEXT = ssl.create_default_context()


class Clients:
    """Pool of API clients that carry development tokens, all closed by `close`."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self._open: list[httpx.Client] = []

    def __call__(self, role: str, subject: str) -> httpx.Client:
        return self.anonymous(headers={"Authorization": f"Bearer {self.live.token(role, subject)}"})

    def anonymous(self, headers: dict[str, str] | None = None) -> httpx.Client:
        """Open a client without a token, or with the given headers."""
        client = httpx.Client(base_url=self.live.base_url, headers=headers, timeout=30, verify=_SSL_CONTEXT)
        self._open.append(client)
        return client

    def close(self) -> None:
        for client in self._open:
            client.close()


def now_iso(offset: dt.timedelta = dt.timedelta(0)) -> str:
    return (dt.datetime.now(dt.timezone.utc) + offset).isoformat()


def event(
    work_order_id: str,
    event_type: str,
    base_version: int,
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Build one proposed event with a fresh client_event_id, where `fields` override envelope fields.

    The payload is taken to be in the current layout. An event type whose
    layout changed since version 1 gets the current `schema_version`, and
    every other type is sent without the field, as a legacy client sends it.
    """
    body: dict[str, Any] = {
        "client_event_id": str(uuid.uuid4()),
        "work_order_id": work_order_id,
        "type": event_type,
        "payload": payload or {},
        "occurred_at": now_iso(),
        "base_version": base_version,
        "device_id": DEVICE,
    }
    if any(legacy_type == event_type for legacy_type, _ in LEGACY_PAYLOADS):
        body["schema_version"] = SCHEMA_VERSION
    body.update(fields)
    return body


def created(work_order_id: str, *, priority: str = "P3", title: str = "Spindle alarm 2041") -> dict[str, Any]:
    payload = {"title": title, "site_id": "site-stuttgart", "asset_id": "cnc-101", "priority": priority}
    return event(work_order_id, "created", 0, payload)


def assigned(work_order_id: str, engineer_id: str, base_version: int = 1) -> dict[str, Any]:
    return event(work_order_id, "assigned", base_version, {"engineer_id": engineer_id})


def post_batch(client: httpx.Client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST a batch, require 200 and one decision per event, and return the decisions."""
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert len(decisions) == len(events)
    return decisions


def create_assigned(client: httpx.Client, work_order_id: str, engineer_id: str, priority: str = "P3") -> None:
    """Create an order and assign it, leaving it `assigned` at version 2."""
    decisions = post_batch(client, [created(work_order_id, priority=priority), assigned(work_order_id, engineer_id)])
    assert [d["status"] for d in decisions] == ["ACCEPTED", "ACCEPTED"]


def all_changes(client: httpx.Client, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Walk the changes feed from `since` to its end and return every event."""
    events: list[dict[str, Any]] = []
    cursor = since
    while True:
        response = client.get("/v1/sync/changes", params={"since": cursor, "limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        events.extend(page["events"])
        cursor = int(page["next_cursor"])
        if not page["has_more"]:
            return events


def timeline(client: httpx.Client, work_order_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/work-orders/{work_order_id}/timeline")
    assert response.status_code == 200, response.text
    return response.json()


def work_order(client: httpx.Client, work_order_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/work-orders/{work_order_id}")
    assert response.status_code == 200, response.text
    return response.json()
