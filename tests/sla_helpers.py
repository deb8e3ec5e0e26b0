"""Contracts with SLA policies and order histories for the SLA endpoint and clock job tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
from api_helpers import event, post_batch

from server.api.catalog import parse_catalog_request
from server.catalog.commands import check_commands
from server.config import Settings
from server.store import Store, create_store
from server.store.catalog import catalog_of
from shared_schema import Actor, Role

UTC = dt.timezone.utc
OFFICE_HOURS = [[{"start": "08:00:00", "end": "17:00:00"}]] * 5 + [[], []]


def policy_json(calendar: dict[str, Any], p1: tuple[str, str] = ("PT4H", "PT8H"), **fields: Any) -> str:
    """Return the `policy` JSON of a contract: P1 targets from `p1`, P2-P4 one day and five days."""
    targets = {"P1": {"response": p1[0], "resolution": p1[1]}}
    for priority in ("P2", "P3", "P4"):
        targets[priority] = {"response": "PT24H", "resolution": "PT120H"}
    return json.dumps({"calendar": calendar, "targets": targets, **fields})


BERLIN_OFFICE = policy_json({"type": "business", "time_zone": "Europe/Berlin", "weekly_hours": OFFICE_HOURS})
ROUND_THE_CLOCK = policy_json({"type": "24x7"})


async def _with_store(settings: Settings, work: Any) -> Any:
    store = create_store(settings)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def run_with_store(settings: Settings, work: Any) -> Any:
    """Open a second store on the server's database, run `await work(store)` and close it."""
    return asyncio.run(_with_store(settings, work))


def put_contracts(settings: Settings, contracts: dict[str, str]) -> None:
    """Register contracts with these policy JSON texts through the catalog command path."""
    body = {
        "commands": [
            {"type": "contract_registered", "entity_id": key, "payload": {"name": key, "policy": json.loads(text)}}
            for key, text in contracts.items()
        ]
    }

    async def write(store: Store) -> None:
        commands = check_commands(parse_catalog_request(json.dumps(body).encode()))
        await catalog_of(store).record(
            Actor(subject="sla-test-admin", role=Role.ADMIN),
            commands,
            device_id=None,
            correlation_id=None,
            recorded_at=dt.datetime.now(UTC),
        )

    run_with_store(settings, write)


def at(text: str) -> str:
    """Return an ISO instant in UTC from a short form such as `2024-06-14 13:00`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def history(
    client: httpx.Client,
    work_order_id: str,
    steps: list[tuple[str, str, dict[str, Any]]],
    *,
    contract_id: str | None,
    priority: str = "P1",
    first_version: int = 0,
) -> None:
    """Record `steps` (event type, occurred_at, payload) in order; `created` gets the contract and priority."""
    events = []
    for offset, (event_type, occurred_at, payload) in enumerate(steps):
        if event_type == "created":
            payload = {"title": "Spindle alarm", "site_id": "site-stuttgart", "priority": priority, **payload}
            if contract_id is not None:
                payload["contract_id"] = contract_id
        events.append(event(work_order_id, event_type, first_version + offset, payload, occurred_at=occurred_at))
    decisions = post_batch(client, events)
    assert [d["status"] for d in decisions] == ["ACCEPTED"] * len(events), decisions


def sla(client: httpx.Client, work_order_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/work-orders/{work_order_id}/sla")
    assert response.status_code == 200, response.text
    return response.json()


def iso_utc(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
