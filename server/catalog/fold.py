"""Fold catalog events into entity documents: the one rule set for requests and for rebuilds.

A document is the JSON value stored in the `document` column of the
entity's table. `apply_catalog_event` checks what needs stored data (an id
registered twice, an update of an unknown id, an unknown site, a snapshot or
policy version with a `valid_from` or `effective_from` already used) and
raises `CommandError` when it fails. A request turns that into a 422 and a
rebuild into a corrupt-log error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from .commands import CommandError

# Tables of the catalog projection, by entity, with their key column and the
# columns copied out of the document.
ENTITY_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "engineer": ("engineers", "engineer_id", ("name", "home_site_id")),
    "site": ("sites", "site_id", ("name", "time_zone")),
    "asset": ("assets", "asset_id", ("site_id", "model", "serial")),
    "contract": ("contracts", "contract_id", ("name",)),
}
ENTITIES = tuple(ENTITY_TABLES)

# Documents by entity, then by id.
Documents = dict[str, dict[str, dict[str, Any]]]


class CatalogEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `catalog_events`."""

    id: int
    recorded_at: dt.datetime
    actor: str
    actor_role: str
    device_id: str | None
    correlation_id: str | None
    entity: str
    entity_id: str
    type: str
    payload: dict[str, Any]


class RecordedChange(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the response of `POST /v1/catalog`."""

    id: int
    type: str
    entity: str
    entity_id: str
    recorded_at: dt.datetime


def empty_documents() -> Documents:
    return {entity: {} for entity in ENTITIES}


def apply_catalog_event(documents: Documents, event: CatalogEvent, *, path: str = "$") -> None:
    """Apply one event to `documents` in place; `path` prefixes the fields named in a CommandError."""
    entity_documents = documents[event.entity]
    current = entity_documents.get(event.entity_id)
    verb = event.type.rsplit("_", 1)[1]
    payload = event.payload
    if verb == "registered":
        if current is not None:
            raise CommandError(
                f"{event.entity} {event.entity_id!r} is already registered; use {event.entity}_updated to change it",
                field=f"{path}.entity_id",
                value=event.entity_id,
            )
    elif current is None:
        raise CommandError(
            f"{event.entity} {event.entity_id!r} was not found; register it first with {event.entity}_registered",
            field=f"{path}.entity_id",
            value=event.entity_id,
        )
    if event.entity in ("asset",) and "site_id" in payload:
        _require_site(documents, payload["site_id"], f"{path}.payload.site_id")
    if event.entity == "engineer" and payload.get("home_site_id") is not None:
        _require_site(documents, payload["home_site_id"], f"{path}.payload.home_site_id")

    document = dict(current) if current is not None else _new_document(event)
    if event.type in ("engineer_registered", "engineer_updated"):
        document.update(name=payload["name"], skills=payload["skills"], calendar=payload["calendar"])
        document["home_site_id"] = payload.get("home_site_id")
    elif event.type == "engineer_absence_recorded":
        absence = {"start": payload["start"], "end": payload["end"], "reason": payload["reason"], "catalog_event_id": event.id}
        document["absences"] = sorted([*document["absences"], absence], key=lambda item: (_instant(item["start"]), item["catalog_event_id"]))
    elif event.type in ("site_registered", "site_updated"):
        document.update(name=payload["name"], time_zone=payload["time_zone"])
    elif event.type in ("asset_registered", "asset_updated"):
        document.update(site_id=payload["site_id"], model=payload["model"], serial=payload["serial"])
    elif event.type == "asset_configuration_recorded":
        document["configurations"] = _add_snapshot(document["configurations"], payload, f"{path}.payload.valid_from")
    elif event.type in ("contract_registered", "contract_updated"):
        document["name"] = payload["name"]
        if payload.get("policy") is not None:
            document["policies"] = _add_policy(document["policies"], payload["policy"], f"{path}.payload.policy.effective_from")
    else:
        raise CommandError(f"unknown catalog event type {event.type!r}", field=f"{path}.type", value=event.type)
    document["version"] = document["version"] + 1
    document["updated_at"] = event.recorded_at.astimezone(dt.timezone.utc).isoformat()
    entity_documents[event.entity_id] = document


def table_row(entity: str, document: dict[str, Any]) -> tuple[Any, ...]:
    """Return the row of the entity's table: key, copied columns, then the document as JSON text."""
    _, key, columns = ENTITY_TABLES[entity]
    return (document[key], *(document.get(column) for column in columns), msgspec.json.encode(document).decode())


def snapshot_at(document: dict[str, Any], at: dt.datetime) -> dict[str, Any] | None:
    """Return the configuration snapshot whose half-open interval [valid_from, valid_to) contains `at`."""
    for snapshot in document["configurations"]:
        valid_to = snapshot["valid_to"]
        if _instant(snapshot["valid_from"]) <= at and (valid_to is None or at < _instant(valid_to)):
            return snapshot
    return None


def _new_document(event: CatalogEvent) -> dict[str, Any]:
    _, key, _ = ENTITY_TABLES[event.entity]
    document: dict[str, Any] = {key: event.entity_id, "version": 0}
    if event.entity == "engineer":
        document["absences"] = []
    elif event.entity == "asset":
        document["configurations"] = []
    elif event.entity == "contract":
        document["policies"] = []
    return document


def _require_site(documents: Documents, site_id: str, field: str) -> None:
    if site_id not in documents["site"]:
        raise CommandError(f"site {site_id!r} was not found; register it first with site_registered", field=field, value=site_id)


def _add_snapshot(snapshots: list[dict[str, Any]], payload: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """Insert a snapshot in valid_from order and set each valid_to to the next snapshot's valid_from."""
    valid_from = _instant(payload["valid_from"])
    if any(_instant(snapshot["valid_from"]) == valid_from for snapshot in snapshots):
        raise CommandError(
            f"the asset already has a configuration snapshot valid from {payload['valid_from']}; "
            "snapshots need distinct valid_from instants",
            field=field,
            value=payload["valid_from"],
        )
    entries = [{"valid_from": item["valid_from"], "configuration": item["configuration"]} for item in snapshots]
    entries.append({"valid_from": payload["valid_from"], "configuration": payload["configuration"]})
    entries.sort(key=lambda item: _instant(item["valid_from"]))
    for entry, following in zip(entries, [*entries[1:], None]):
        entry["valid_to"] = following["valid_from"] if following is not None else None
    return [{"valid_from": item["valid_from"], "valid_to": item["valid_to"], "configuration": item["configuration"]} for item in entries]


def _add_policy(policies: list[dict[str, Any]], policy: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """Add a policy version, kept in effective_from order with the version in force since always first."""
    effective_from = policy.get("effective_from")
    key = None if effective_from is None else _instant(effective_from)
    for existing in policies:
        existing_from = existing.get("effective_from")
        if (None if existing_from is None else _instant(existing_from)) == key:
            raise CommandError(
                f"the contract already has a policy version with effective_from {effective_from}; "
                "give the new version another effective_from",
                field=field,
                value=effective_from,
            )
    return sorted([*policies, policy], key=_policy_order)


def _policy_order(policy: dict[str, Any]) -> dt.datetime:
    effective_from = policy.get("effective_from")
    return dt.datetime.min.replace(tzinfo=dt.timezone.utc) if effective_from is None else _instant(effective_from)


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)
