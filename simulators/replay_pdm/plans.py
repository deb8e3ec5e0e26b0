"""Work orders planned from the maintenance log: when each is reported and what its `created` event contains."""

from __future__ import annotations

import dataclasses
import datetime as dt

from .dataset import FleetLog, MachineError, asset_id

CONTRACT_ID = "ct-fleet-service"
SITE_ID = "plant-1"
# Machines at least this old get P1 when they fail, younger ones P2.
OLD_MACHINE_YEARS = 15


@dataclasses.dataclass(frozen=True)
class OrderPlan:
    """One work order to create: its id, report time, planned start and `created` payload.

    `kind` is "corrective" (a failure), "preventive" (a planned replacement)
    or "inspection" (a machine error reported as a fault, planned as
    condition-based, which EN 13306 counts as preventive maintenance).
    """

    work_order_id: str
    kind: str
    report_time: dt.datetime
    planned_start: dt.datetime | None
    asset_id: str
    payload: dict[str, object]


def _stamp(time: dt.datetime) -> str:
    return time.strftime("%Y%m%d%H")


def order_plans(log: FleetLog, lead_time: dt.timedelta, faults: bool) -> list[OrderPlan]:
    """Turn failures into corrective orders reported at the failure time and replacements into preventive ones.

    A preventive order is reported `lead_time` before its replacement and
    planned to start at it. With `faults`, every machine error becomes an
    inspection order reported at the error and planned two hours later.
    """
    plans = []
    for failure in log.failures:
        machine = log.machines[failure.machine_id]
        plans.append(
            OrderPlan(
                work_order_id=f"cm-{failure.machine_id:03d}-{_stamp(failure.time)}-{failure.component}",
                kind="corrective",
                report_time=failure.time,
                planned_start=None,
                asset_id=asset_id(failure.machine_id),
                payload={
                    "title": f"{failure.component} failed on machine {failure.machine_id}",
                    "site_id": SITE_ID,
                    "asset_id": asset_id(failure.machine_id),
                    "contract_id": CONTRACT_ID,
                    "priority": "P1" if machine.age_years >= OLD_MACHINE_YEARS else "P2",
                    "maintenance_type": "corrective",
                    "component": failure.component,
                },
            )
        )
    for replacement in log.replacements:
        plans.append(
            OrderPlan(
                work_order_id=f"pm-{replacement.machine_id:03d}-{_stamp(replacement.time)}-{replacement.component}",
                kind="preventive",
                report_time=replacement.time - lead_time,
                planned_start=replacement.time,
                asset_id=asset_id(replacement.machine_id),
                payload={
                    "title": f"planned replacement of {replacement.component} on machine {replacement.machine_id}",
                    "site_id": SITE_ID,
                    "asset_id": asset_id(replacement.machine_id),
                    "priority": "P4",
                    "maintenance_type": "preventive",
                    "component": replacement.component,
                },
            )
        )
    if faults:
        plans.extend(_inspection_plan(error) for error in log.errors)
    return sorted(plans, key=lambda plan: (plan.report_time, plan.work_order_id))


def _inspection_plan(error: MachineError) -> OrderPlan:
    return OrderPlan(
        work_order_id=f"fr-{error.machine_id:03d}-{_stamp(error.time)}-{error.error_id}",
        kind="inspection",
        report_time=error.time,
        planned_start=error.time + dt.timedelta(hours=2),
        asset_id=asset_id(error.machine_id),
        payload={
            "title": f"{error.error_id} reported by machine {error.machine_id}",
            "site_id": SITE_ID,
            "asset_id": asset_id(error.machine_id),
            "priority": "P3",
            "maintenance_type": "preventive",
            "description": "Machine error without a stop; inspect the machine.",
        },
    )
