"""The SLA clock job: records each warning and breach of an open order as a server-origin event.

Each run evaluates every open order at `now` and appends the crossings that
the order's stream does not contain yet, as `sla_warning` and `sla_breached`
events of `SYSTEM_ACTOR`. The `client_event_id` of a crossing is a uuid5 of
the order id and the crossing key, so a second run, or a second server
process on the same database, replays the stored decision instead of
recording the crossing again.

A crossing that a late event later moves or removes stays in the stream as
history: its key is recorded, so the job never records it again, and
`GET /v1/work-orders/{id}/sla` shows the current result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from shared_schema import Actor, DecisionStatus, ProposedEvent, Role

from ..store.errors import StoreError
from ..store.sla_reads import list_open_work_orders
from .clock import ClockState, Crossing, CrossingKind
from .contracts import PolicyCatalog
from .engine import SlaEvaluation
from .view import at_risk_items, evaluate_order

if TYPE_CHECKING:
    from ..store import Store

log = structlog.get_logger("csdp.sla_clock")

SYSTEM_ACTOR = Actor(subject="csdp-sla-clock", role=Role.SYSTEM)
SYSTEM_DEVICE_ID = "csdp-sla-clock"
# Fixed forever: changing it would record every crossing a second time.
CROSSING_NAMESPACE = uuid.UUID("0b4d9a52-3f0e-5c1a-9d7e-6a2b8c4f1e37")
# Order ids listed in one log line about orders without a usable policy.
_LOGGED_IDS = 10


def crossing_event_id(work_order_id: str, crossing_key: str) -> uuid.UUID:
    """Return the deterministic client_event_id of one crossing of one order."""
    return uuid.uuid5(CROSSING_NAMESPACE, f"{work_order_id}/{crossing_key}")


@dataclasses.dataclass
class ClockRun:
    """Counts and order ids of one run of the job."""

    evaluated: int = 0
    recorded: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(work order id, crossing key) of every crossing this run recorded."""
    without_policy: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    at_risk: int = 0
    """Running clocks of the orders' current cycles that are at risk at `now`."""
    breached: int = 0
    """Running clocks of the orders' current cycles that are breached at `now`."""
    finished_at: dt.datetime | None = None


async def run_clock_once(store: Store, now: dt.datetime, skew_tolerance: dt.timedelta = dt.timedelta(minutes=5)) -> ClockRun:
    """Evaluate every open order at `now`, record its new crossings and return a ClockRun.

    An error on one order is logged and the run goes on with the next one.
    """
    run = ClockRun()
    run_id = uuid.uuid4().hex[:12]
    catalog = await PolicyCatalog.load(store)
    for state in await list_open_work_orders(store):
        if state.contract_id is None:
            continue
        try:
            order = await evaluate_order(store, state, catalog, now)
            run.evaluated += 1
            if order.evaluation is None:
                run.without_policy.append(state.work_order_id)
                continue
            for item in at_risk_items(order):
                if item.state is ClockState.BREACHED:
                    run.breached += 1
                else:
                    run.at_risk += 1
            recorded_keys = {
                str(event.payload.get("crossing_key")) for event in order.events if event.type in _CROSSING_TYPES.values()
            }
            new = [crossing for crossing in order.evaluation.crossings if crossing.key not in recorded_keys]
            if new:
                proposals = [
                    _proposal(state.work_order_id, state.version, crossing, order.evaluation, run_id) for crossing in new
                ]
                decisions = await store.append_batch(SYSTEM_ACTOR, proposals, now, skew_tolerance)
                _log_batch(state.work_order_id, run_id, proposals, decisions, run)
        except (StoreError, ValueError) as exc:
            run.failed.append(state.work_order_id)
            log.error("sla_clock_order_failed", run_id=run_id, work_order_id=state.work_order_id, error=str(exc))
    if run.without_policy:
        log.warning(
            "sla_clock_orders_without_policy",
            run_id=run_id,
            count=len(run.without_policy),
            work_order_ids=run.without_policy[:_LOGGED_IDS],
        )
    run.finished_at = dt.datetime.now(dt.timezone.utc)
    return run


_CROSSING_TYPES = {CrossingKind.WARNING: "sla_warning", CrossingKind.BREACH: "sla_breached"}


def _proposal(
    work_order_id: str, version: int, crossing: Crossing, evaluation: SlaEvaluation, run_id: str
) -> ProposedEvent:
    cycle = evaluation.cycles[crossing.cycle - 1]
    clock = cycle.response if crossing.clock.value == "response" else cycle.resolution
    payload: dict[str, object] = {
        "clock": crossing.clock.value,
        "cycle": crossing.cycle,
        "due_at": clock.due_at.isoformat() if clock.due_at else None,
        "crossed_at": crossing.crossed_at.isoformat(),
        "crossing_key": crossing.key,
    }
    if crossing.kind is CrossingKind.WARNING:
        payload["threshold"] = crossing.threshold
    return ProposedEvent(
        client_event_id=crossing_event_id(work_order_id, crossing.key),
        work_order_id=work_order_id,
        type=_CROSSING_TYPES[crossing.kind],
        payload=payload,
        occurred_at=crossing.crossed_at,
        base_version=version,
        device_id=SYSTEM_DEVICE_ID,
        correlation_id=f"sla-clock-{run_id}",
    )


def _log_batch(work_order_id: str, run_id: str, proposals: list[ProposedEvent], decisions: list, run: ClockRun) -> None:  # type: ignore[type-arg]
    for proposal, decision in zip(proposals, decisions):
        key = str(proposal.payload["crossing_key"])
        if decision.status is DecisionStatus.ACCEPTED and not decision.replay:
            run.recorded.append((work_order_id, key))
        elif decision.status is not DecisionStatus.ACCEPTED:
            # Another process recorded the crossing with other content, or the
            # order left the open states after it was read.
            log.info(
                "sla_crossing_not_recorded",
                run_id=run_id,
                work_order_id=work_order_id,
                crossing_key=key,
                client_event_id=str(proposal.client_event_id),
                reason_code=decision.reason_code.value,
            )
    recorded = [key for order_id, key in run.recorded if order_id == work_order_id]
    if recorded:
        log.info("sla_crossings_recorded", run_id=run_id, work_order_id=work_order_id, crossing_keys=recorded)


class SlaClockJob:
    """Runs `run_clock_once` every `interval_seconds` in an asyncio task until stopped."""

    def __init__(
        self,
        store: Store,
        interval_seconds: float,
        skew_tolerance: dt.timedelta,
        on_run: Callable[[ClockRun], None] | None = None,
    ) -> None:
        self._store = store
        self._on_run = on_run
        self._interval = interval_seconds
        self._skew_tolerance = skew_tolerance
        self._task: asyncio.Task[None] | None = None
        self.last_run: ClockRun | None = None
        """The last run that finished, for the metrics."""
        self.last_attempt_at: float | None = None
        """`time.monotonic()` when the last run ended, with or without an error; None before the first."""
        self.started_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    @property
    def interval_seconds(self) -> float:
        return self._interval

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._interval <= 0:
            log.info("sla_clock_disabled", reason="CSDP_SLA_CLOCK_SECONDS is 0")
            return
        self.started_at = time.monotonic()
        self._task = asyncio.create_task(self._loop(), name="sla-clock")
        log.info("sla_clock_started", interval_seconds=self._interval, subject=SYSTEM_ACTOR.subject)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        log.info("sla_clock_stopped")

    async def _loop(self) -> None:
        while True:
            try:
                self.last_run = await run_clock_once(self._store, dt.datetime.now(dt.UTC), self._skew_tolerance)
                if self._on_run is not None:
                    self._on_run(self.last_run)
            except Exception as exc:  # noqa: BLE001 - the job logs any failure and tries again at the next interval
                log.error("sla_clock_run_failed", error=repr(exc))
            self.last_attempt_at = time.monotonic()
            await asyncio.sleep(self._interval)
