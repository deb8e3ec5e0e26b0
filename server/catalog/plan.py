"""Plan a catalog request: the events to append and the documents to write, decided in memory.

The stores call `plan_catalog` inside their write transaction, after
loading the documents that `referenced_ids` lists, so the checks see the
committed catalog and every command before it in the same request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from shared_schema import Actor

from .commands import CheckedCommand
from .fold import CatalogEvent, Documents, apply_catalog_event


@dataclasses.dataclass
class CatalogPlan:
    events: list[CatalogEvent]
    # Documents changed by the request, by entity and id.
    changed: dict[tuple[str, str], dict[str, Any]]


def referenced_ids(commands: list[CheckedCommand]) -> dict[str, set[str]]:
    """Return the ids, by entity, whose documents the checks of `commands` read."""
    ids: dict[str, set[str]] = {"engineer": set(), "site": set(), "asset": set(), "contract": set()}
    for command in commands:
        ids[command.entity].add(command.entity_id)
        for name in ("site_id", "home_site_id"):
            site_id = command.payload.get(name)
            if isinstance(site_id, str):
                ids["site"].add(site_id)
    return ids


def plan_catalog(
    documents: Documents,
    commands: list[CheckedCommand],
    *,
    actor: Actor,
    device_id: str | None,
    correlation_id: str | None,
    recorded_at: dt.datetime,
    first_id: int,
) -> CatalogPlan:
    """Apply `commands` in order to `documents` (changed in place), or raise CommandError for the first that fails."""
    events = []
    changed: dict[tuple[str, str], dict[str, Any]] = {}
    for offset, command in enumerate(commands):
        event = CatalogEvent(
            id=first_id + offset,
            recorded_at=recorded_at,
            actor=actor.subject,
            actor_role=actor.role.value,
            device_id=device_id,
            correlation_id=correlation_id,
            entity=command.entity,
            entity_id=command.entity_id,
            type=command.type,
            payload=command.payload,
        )
        apply_catalog_event(documents, event, path=f"$.commands[{command.index}]")
        events.append(event)
        changed[(command.entity, command.entity_id)] = documents[command.entity][command.entity_id]
    return CatalogPlan(events=events, changed=changed)
