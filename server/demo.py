"""A small demo catalog and a few open orders, so a first start shows something."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import structlog

from shared_schema import Actor, ProposedEvent, Role

from .catalog.commands import CatalogRequest, check_commands
from .store import Store
from .store.catalog import catalog_of

log = structlog.get_logger("csdp.demo")

DEMO_ACTOR = Actor(subject="demo-loader", role=Role.ADMIN)
DEMO_NAMESPACE = uuid.UUID("6f1c7c1e-1f0e-4a8e-9a55-2f0d5c3b8a10")

# Monday to Friday, 07:00 to 17:00.
WEEKDAYS_7_TO_17 = [[{"start": "07:00:00", "end": "17:00:00"}]] * 5 + [[], []]


def _calendar(time_zone: str) -> dict:
    return {"type": "business", "time_zone": time_zone, "weekly_hours": WEEKDAYS_7_TO_17}


def _targets(response: str, resolution: str) -> dict:
    return {"response": response, "resolution": resolution}


GOLD_POLICY = {
    "calendar": {"type": "24x7"},
    "targets": {
        "P1": _targets("PT4H", "PT24H"),
        "P2": _targets("PT8H", "PT48H"),
        "P3": _targets("PT24H", "PT120H"),
        "P4": _targets("PT48H", "PT240H"),
    },
}


def catalog_commands(now: dt.datetime) -> list[dict]:
    """Build the demo catalog as `POST /v1/catalog` commands, with configurations valid from 30 days before `now`."""
    since = (now - dt.timedelta(days=30)).isoformat()

    def command(command_type: str, entity_id: str, payload: dict) -> dict:
        return {"type": command_type, "entity_id": entity_id, "payload": payload}

    return [
        command("site_registered", "site-stuttgart", {"name": "Precision Parts Stuttgart", "time_zone": "Europe/Berlin"}),
        command("site_registered", "site-lyon", {"name": "Usinage Lyon", "time_zone": "Europe/Paris"}),
        command(
            "engineer_registered",
            "e-17",
            {"name": "Alex Brandt", "skills": ["fanuc", "spindle"], "calendar": _calendar("Europe/Berlin"), "home_site_id": "site-stuttgart"},
        ),
        command(
            "engineer_registered",
            "e-21",
            {"name": "Marta Keller", "skills": ["heidenhain", "hydraulics"], "calendar": _calendar("Europe/Berlin"), "home_site_id": "site-stuttgart"},
        ),
        command(
            "engineer_registered",
            "e-34",
            {"name": "Jonas Weber", "skills": ["siemens", "coolant"], "calendar": _calendar("Europe/Paris"), "home_site_id": "site-lyon"},
        ),
        command("asset_registered", "cnc-101", {"site_id": "site-stuttgart", "model": "DMG Mori NLX 2500", "serial": "NLX-88412"}),
        command("asset_registered", "cnc-102", {"site_id": "site-stuttgart", "model": "Haas VF-2", "serial": "VF2-11873"}),
        command("asset_registered", "cnc-201", {"site_id": "site-lyon", "model": "Mazak Variaxis i-600", "serial": "VX6-55201"}),
        command(
            "asset_configuration_recorded",
            "cnc-101",
            {"valid_from": since, "configuration": {"controller": "CELOS / Fanuc 31i", "firmware": "V4.2", "spindle_hours": 11840}},
        ),
        command(
            "asset_configuration_recorded",
            "cnc-102",
            {"valid_from": since, "configuration": {"controller": "Haas NGC", "firmware": "100.22", "spindle_hours": 6312}},
        ),
        command(
            "asset_configuration_recorded",
            "cnc-201",
            {"valid_from": since, "configuration": {"controller": "Mazatrol SmoothX", "firmware": "2.10", "spindle_hours": 20455}},
        ),
        command("contract_registered", "ct-gold", {"name": "Gold 24x7", "policy": GOLD_POLICY}),
    ]


ORDERS = [
    ("wo-1001", "Spindle vibration above limit", "site-stuttgart", "cnc-101", "P1", "e-17"),
    ("wo-1002", "Coolant pump leaking", "site-stuttgart", "cnc-102", "P2", "e-21"),
    ("wo-1003", "Axis Y homing fails after power cut", "site-lyon", "cnc-201", "P2", None),
]


def _event(work_order_id: str, event_type: str, payload: dict, base_version: int, now: dt.datetime) -> ProposedEvent:
    return ProposedEvent(
        client_event_id=uuid.uuid5(DEMO_NAMESPACE, f"{work_order_id}/{event_type}"),
        work_order_id=work_order_id,
        type=event_type,
        payload=payload,
        occurred_at=now,
        base_version=base_version,
        device_id="demo-loader",
    )


async def load_demo(store: Store) -> None:
    """Load the demo catalog and orders once; a store that already has events is left alone."""
    if await store.count_events() > 0:
        log.info("demo_skipped", reason="the store already has events")
        return
    now = dt.datetime.now(dt.timezone.utc)
    await load_demo_catalog(store, now)
    events = []
    for work_order_id, title, site_id, asset_id, priority, engineer_id in ORDERS:
        created = {"title": title, "site_id": site_id, "asset_id": asset_id, "priority": priority, "contract_id": "ct-gold"}
        events.append(_event(work_order_id, "created", created, 0, now))
        if engineer_id:
            events.append(_event(work_order_id, "assigned", {"engineer_id": engineer_id}, 1, now))
    decisions = await store.append_batch(DEMO_ACTOR, events, now, dt.timedelta(minutes=5))
    log.info("demo_loaded", orders=len(ORDERS), events=sum(d.event_id is not None for d in decisions))


async def load_demo_catalog(store: Store, now: dt.datetime) -> None:
    """Record the demo catalog through the same checks as `POST /v1/catalog`, unless a demo site exists."""
    catalog = catalog_of(store)
    if await catalog.get("site", "site-stuttgart") is not None:
        log.info("demo_catalog_skipped", reason="the catalog already has the demo sites")
        return
    request = msgspec.convert({"commands": catalog_commands(now)}, CatalogRequest)
    recorded = await catalog.record(
        DEMO_ACTOR, check_commands(request), device_id="demo-loader", correlation_id=None, recorded_at=now
    )
    log.info("demo_catalog_loaded", catalog_events=len(recorded))
