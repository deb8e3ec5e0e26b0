"""Builders for catalog commands and a wrapper around `POST /v1/catalog`."""

from __future__ import annotations

from typing import Any

import httpx

WEEKDAYS_8_TO_17 = [[{"start": "08:00:00", "end": "17:00:00"}]] * 5 + [[], []]
CALENDAR = {"type": "business", "time_zone": "Europe/Berlin", "weekly_hours": WEEKDAYS_8_TO_17}


def command(command_type: str, entity_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": command_type, "entity_id": entity_id, "payload": payload}


def site(site_id: str = "site-a", time_zone: str = "Europe/Berlin", verb: str = "registered") -> dict[str, Any]:
    return command(f"site_{verb}", site_id, {"name": f"Site {site_id}", "time_zone": time_zone})


def engineer(engineer_id: str = "e-1", verb: str = "registered", **payload: Any) -> dict[str, Any]:
    body = {"name": "Alex Brandt", "skills": ["fanuc"], "calendar": CALENDAR, **payload}
    return command(f"engineer_{verb}", engineer_id, body)


def asset(asset_id: str = "cnc-1", site_id: str = "site-a", verb: str = "registered") -> dict[str, Any]:
    return command(f"asset_{verb}", asset_id, {"site_id": site_id, "model": "Haas VF-2", "serial": "VF2-1"})


def snapshot(asset_id: str, valid_from: str, **configuration: Any) -> dict[str, Any]:
    return command("asset_configuration_recorded", asset_id, {"valid_from": valid_from, "configuration": configuration})


def policy(**fields: Any) -> dict[str, Any]:
    targets = {priority: {"response": "PT4H", "resolution": "PT24H"} for priority in ("P1", "P2", "P3", "P4")}
    return {"calendar": {"type": "24x7"}, "targets": targets, **fields}


def contract(contract_id: str = "ct-1", verb: str = "registered", **policy_fields: Any) -> dict[str, Any]:
    return command(f"contract_{verb}", contract_id, {"name": "Gold", "policy": policy(**policy_fields)})


def post_catalog(client: httpx.Client, commands: list[dict[str, Any]], **headers: str) -> list[dict[str, Any]]:
    """POST commands, require 200, and return the recorded entries."""
    response = client.post("/v1/catalog", json={"commands": commands}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["recorded"]


def rejected(client: httpx.Client, body: Any) -> dict[str, Any]:
    """POST a body that must be rejected with 422 and return the error body."""
    response = client.post("/v1/catalog", json=body)
    assert response.status_code == 422, response.text
    return response.json()


def items(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["items"]
