"""A small demo catalog and a few open orders, so a first start shows something."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import structlog

from shared_schema import Actor, ProposedEvent, Role

from .store import Store

log = structlog.get_logger("csdp.demo")

DEMO_ACTOR = Actor(subject="demo-loader", role=Role.ADMIN)
DEMO_NAMESPACE = uuid.UUID("6f1c7c1e-1f0e-4a8e-9a55-2f0d5c3b8a10")

ENGINEERS = [
    {"engineer_id": "e-17", "name": "Alex Brandt", "skills": '["fanuc", "spindle"]'},
    {"engineer_id": "e-21", "name": "Marta Keller", "skills": '["heidenhain", "hydraulics"]'},
    {"engineer_id": "e-34", "name": "Jonas Weber", "skills": '["siemens", "coolant"]'},
]
SITES = [
    {"site_id": "site-stuttgart", "name": "Precision Parts Stuttgart", "time_zone": "Europe/Berlin"},
    {"site_id": "site-lyon", "name": "Usinage Lyon", "time_zone": "Europe/Paris"},
]
ASSETS = [
    {"asset_id": "cnc-101", "site_id": "site-stuttgart", "model": "DMG Mori NLX 2500", "serial": "NLX-88412"},
    {"asset_id": "cnc-102", "site_id": "site-stuttgart", "model": "Haas VF-2", "serial": "VF2-11873"},
    {"asset_id": "cnc-201", "site_id": "site-lyon", "model": "Mazak Variaxis i-600", "serial": "VX6-55201"},
]
CONTRACTS = [
    {
        "contract_id": "ct-gold",
        "name": "Gold 24x7",
        # The JSON of one SlaPolicy (docs/sla.md). Durations are ISO 8601.
        "policy": json.dumps(
            {
                "calendar": {"type": "24x7"},
                "targets": {
                    "P1": {"response": "PT4H", "resolution": "PT24H"},
                    "P2": {"response": "PT8H", "resolution": "PT48H"},
                    "P3": {"response": "PT24H", "resolution": "PT120H"},
                    "P4": {"response": "PT72H", "resolution": "PT240H"},
                },
                "pausing_hold_reasons": ["customer", "access"],
                "warning_thresholds": [0.5, 0.75],
                "reopen": "new_cycle",
            }
        ),
    },
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
    await store.upsert_catalog("engineers", ENGINEERS)
    await store.upsert_catalog("sites", SITES)
    await store.upsert_catalog("assets", ASSETS)
    await store.upsert_catalog("contracts", CONTRACTS)

    now = dt.datetime.now(dt.timezone.utc)
    events = []
    for work_order_id, title, site_id, asset_id, priority, engineer_id in ORDERS:
        created = {"title": title, "site_id": site_id, "asset_id": asset_id, "priority": priority, "contract_id": "ct-gold"}
        events.append(_event(work_order_id, "created", created, 0, now))
        if engineer_id:
            events.append(_event(work_order_id, "assigned", {"engineer_id": engineer_id}, 1, now))
    decisions = await store.append_batch(DEMO_ACTOR, events, now, dt.timedelta(minutes=5))
    log.info("demo_loaded", orders=len(ORDERS), events=sum(d.event_id is not None for d in decisions))
