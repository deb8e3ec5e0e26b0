"""Reference data of the replay: the plant, the 100 machines with their configuration, the contract, the team."""

from __future__ import annotations

import datetime as dt

import httpx

from .calendars import Shift, contract_policy
from .dataset import FleetLog
from .plans import CONTRACT_ID, SITE_ID

# POST /v1/catalog takes at most this many commands per request.
MAX_COMMANDS = 500


def catalog_commands(log: FleetLog, shifts: dict[str, Shift], in_service_from: dt.datetime) -> list[dict[str, object]]:
    """Build the catalog commands: site, assets with a configuration snapshot from `in_service_from`, contract, engineers."""
    commands: list[dict[str, object]] = [
        {"type": "site_registered", "entity_id": SITE_ID, "payload": {"name": "Machine fleet plant", "time_zone": "UTC"}}
    ]
    for machine in sorted(log.machines.values(), key=lambda item: item.machine_id):
        commands.append(
            {
                "type": "asset_registered",
                "entity_id": machine.asset_id,
                "payload": {"site_id": SITE_ID, "model": machine.model, "serial": str(machine.machine_id)},
            }
        )
        commands.append(
            {
                "type": "asset_configuration_recorded",
                "entity_id": machine.asset_id,
                "payload": {
                    "valid_from": in_service_from.isoformat(),
                    "configuration": {"model": machine.model, "age_years": machine.age_years},
                },
            }
        )
    commands.append(
        {
            "type": "contract_registered",
            "entity_id": CONTRACT_ID,
            "payload": {"name": "Fleet service contract", "policy": contract_policy()},
        }
    )
    for engineer_id, shift in shifts.items():
        commands.append(
            {
                "type": "engineer_registered",
                "entity_id": engineer_id,
                "payload": {
                    "name": f"Engineer {engineer_id} ({shift.name} shift)",
                    "skills": ["comp1", "comp2", "comp3", "comp4"],
                    "calendar": shift.catalog_calendar(),
                    "home_site_id": SITE_ID,
                },
            }
        )
    return commands


def register_catalog(manager: httpx.Client, commands: list[dict[str, object]]) -> int:
    """Post the commands in requests of at most MAX_COMMANDS; raise SystemExit with the server's error body."""
    for start in range(0, len(commands), MAX_COMMANDS):
        chunk = commands[start : start + MAX_COMMANDS]
        response = manager.post("/v1/catalog", json={"commands": chunk})
        if response.status_code != 200:
            raise SystemExit(
                f"POST /v1/catalog rejected the replay's reference data with HTTP {response.status_code}: "
                f"{response.text[:500]}"
            )
    return len(commands)
