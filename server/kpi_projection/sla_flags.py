"""SLA met/breached flags of the orders that a KPI window restores, evaluated from their history rows.

A restored order (status `completed` or `closed` after its last event) whose
last completion lies in the window and whose `created` names a contract is
evaluated with the contract's policy versions. Its flag is the state of the
resolution clock of its last SLA cycle: True when met, False when breached.
An order gets no flag, and so counts in `sla_unknown`, when its contract is
not in the catalog, its policy is unusable, the engine rejects its history,
or the clock is in another state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import structlog

from shared_schema.payloads import HoldReason, Priority

from ..sla.clock import ClockState
from ..sla.contracts import PolicyCatalog, PolicyUnavailable
from ..sla.engine import SlaEvent, evaluate_sla
from ..sla.view import SLA_INPUT_TYPES
from .rows import KPI_EVENT_TYPES, HistoryRow

log = structlog.get_logger("csdp.kpi")

_RESTORED_TYPES = ("completed", "closed")


def _sla_event(row: HistoryRow) -> SlaEvent:
    return SlaEvent(
        sequence=row.stream_version,
        type=row.type,
        effective_time=row.effective_time,
        priority=Priority(row.priority) if row.priority is not None else None,
        hold_reason=HoldReason(row.hold_reason) if row.hold_reason is not None else None,
    )


def _restored_in_window(rows: list[HistoryRow], start: dt.datetime, end: dt.datetime) -> bool:
    """Tell whether the order's last status change restores it and its last completion lies in [start, end)."""
    status_rows = [row for row in rows if row.type in KPI_EVENT_TYPES]
    if not status_rows or status_rows[-1].type not in _RESTORED_TYPES:
        return False
    completions = [row for row in status_rows if row.type == "completed"]
    return bool(completions) and start <= completions[-1].effective_time < end


def sla_flags(
    rows: Iterable[HistoryRow],
    policies: PolicyCatalog,
    *,
    window_start: dt.datetime,
    window_end: dt.datetime,
    now: dt.datetime,
) -> dict[str, bool]:
    """Return {order id: SLA met} for the restored orders of the window that have a usable contract policy.

    `rows` are history rows in global order, as `window_rows` returns them.
    """
    by_order: dict[str, list[HistoryRow]] = {}
    for row in rows:
        by_order.setdefault(row.work_order_id, []).append(row)

    flags: dict[str, bool] = {}
    failures: list[tuple[str, str]] = []
    for order_id, order_rows in by_order.items():
        created = order_rows[0]
        if created.type != "created" or created.contract_id is None:
            continue
        if not _restored_in_window(order_rows, window_start, window_end):
            continue
        try:
            versions = policies.policies_for(created.contract_id)
            events = [_sla_event(row) for row in order_rows if row.type in SLA_INPUT_TYPES]
            evaluation = evaluate_sla(events, versions, now)
        except PolicyUnavailable:
            continue
        except ValueError as exc:
            # No policy version in force at the cycle's start, or a history row without its priority.
            failures.append((order_id, str(exc)))
            continue
        cycle = evaluation.current
        if cycle is None:
            continue
        if cycle.resolution.state is ClockState.MET:
            flags[order_id] = True
        elif cycle.resolution.state is ClockState.BREACHED:
            flags[order_id] = False
    if failures:
        # One line per request, naming the first order, so a bad contract does not flood the log.
        first_order, first_error = failures[0]
        log.warning("kpi_sla_not_evaluated", orders=len(failures), work_order_id=first_order, error=first_error)
    return flags
