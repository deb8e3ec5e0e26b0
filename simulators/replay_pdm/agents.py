"""Dispatcher and engineers of the replay, each with its own SDK file, on the simulated clock of the log.

Every event carries the simulated time at which it happens as
`occurred_at`. Time advances in steps of one simulated hour: in each step
the dispatcher creates the orders reported by then, and every engineer
records the steps of their current job that are due and syncs when online.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import random
from pathlib import Path

import msgspec
import structlog

from client_sdk import SyncClient, SyncError
from shared_schema import TRANSITION_INDEX, Actor, WorkOrderState, WorkOrderStatus

from ..agents import simulated_client
from ..faults import FlakyNetwork
from .calendars import Shift
from .dataset import MachineError, asset_id
from .plans import OrderPlan

log = structlog.get_logger("csdp.replay_pdm")
S = WorkOrderStatus
FINISHED = (S.COMPLETED, S.CLOSED, S.CANCELLED)
# Statuses in which the dispatcher may add a note (office roles, see shared_schema/transitions.py).
NOTE_STATUSES = (S.NEW, S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE, S.ON_SITE, S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED)
REPAIR_MINUTES = {"corrective": (60, 360), "preventive": (45, 180), "inspection": (20, 60)}


@dataclasses.dataclass(frozen=True)
class ReplayBehaviour:
    """Seeded behaviour of the team. Probabilities are per simulated hour unless stated otherwise."""

    offline_probability: float = 0.03
    max_offline_hours: int = 10
    lost_response_rate: float = 0.02
    reassign_probability: float = 0.003
    """Per order whose last synced state is assigned or accepted; a preventive order waiting a week gets about 0.5."""
    decline_probability: float = 0.03
    """Per assignment."""
    hold_probability: float = 0.1
    """Per job: the engineer waits for parts and comes back."""
    sync_every_hours: int = 2
    travel_minutes: tuple[int, int] = (20, 120)


def sdk_client(
    path: Path, base_url: str, token: str, device_id: str, actor: Actor, network: FlakyNetwork
) -> SyncClient:
    """Build a replay tablet's SDK client, with batches of 200 and a longer timeout than the fleet's for late bulk syncs."""
    return simulated_client(path, base_url, token, device_id, actor, network, batch_size=200, timeout=60)


@dataclasses.dataclass
class Job:
    """An order the engineer works, with the steps still to record as (time, expected status, type, payload)."""

    plan: OrderPlan
    accepted_at: dt.datetime
    ready_at: dt.datetime
    steps: collections.deque = dataclasses.field(default_factory=collections.deque)
    was_on_hold: bool = False


class ReplayEngineer:
    """A tablet that accepts its orders, works them one at a time within its shift and syncs when online."""

    def __init__(
        self,
        engineer_id: str,
        shift: Shift,
        client: SyncClient,
        network: FlakyNetwork,
        rng: random.Random,
        behaviour: ReplayBehaviour,
        plans: dict[str, OrderPlan],
        start: dt.datetime,
    ) -> None:
        self.engineer_id = engineer_id
        self.shift = shift
        self.client = client
        self.network = network
        self.rng = rng
        self.behaviour = behaviour
        self.plans = plans
        self.jobs: dict[str, Job] = {}
        self.active: Job | None = None
        # The tablet's local view, read again only after a sync exchanged events, because
        # SyncClient.work_order() costs time in proportion to the outbox.
        self.states: dict[str, WorkOrderState] = {}
        self.states_stale = True
        self.free_at = start
        self.offline_hours_left = 0
        self.hours_since_sync = 0
        self.recorded = 0
        self.failed_syncs = 0
        self.abandoned_jobs = 0

    # -- connectivity and sync ---------------------------------------------

    def tick(self, now: dt.datetime) -> None:
        self._update_connectivity()
        self.hours_since_sync += 1
        due = self.client.pending_count() > 0 or self.hours_since_sync >= self.behaviour.sync_every_hours
        if not self.network.offline and due:
            self.sync()
        if self.states_stale:
            self._refresh()
        self._work(now)

    def sync(self) -> bool:
        try:
            report = self.client.sync()
        except SyncError as exc:
            # The events stay in the outbox and the next sync retries them.
            self.failed_syncs += 1
            log.warning("replay_sync_failed", device_id=self.client.device_id, error=str(exc))
            return False
        self.hours_since_sync = 0
        if report.pushed or report.pulled:
            self.states_stale = True
        return True

    def go_online(self) -> None:
        self.offline_hours_left = 0
        self.network.offline = False

    def _update_connectivity(self) -> None:
        if self.offline_hours_left > 0:
            self.offline_hours_left -= 1
            self.network.offline = self.offline_hours_left > 0
        elif self.rng.random() < self.behaviour.offline_probability:
            self.offline_hours_left = self.rng.randint(1, self.behaviour.max_offline_hours)
            self.network.offline = True

    def _refresh(self) -> None:
        """Read the local view again and add a job for each open order of this engineer that has none."""
        self.states = self.client.work_orders()
        self.states_stale = False
        for work_order_id, state in self.states.items():
            mine = state.engineer_id == self.engineer_id and state.status not in FINISHED
            if mine and work_order_id not in self.jobs and work_order_id in self.plans:
                self.jobs[work_order_id] = Job(self.plans[work_order_id], accepted_at=self.free_at, ready_at=self.free_at)

    # -- work --------------------------------------------------------------

    def _work(self, now: dt.datetime) -> None:
        for work_order_id in sorted(self.jobs):
            state = self.states.get(work_order_id)
            if state is None or state.engineer_id != self.engineer_id or state.status in FINISHED or state.status is S.NEW:
                self._drop(work_order_id)
            elif state.status is S.ASSIGNED and self.jobs[work_order_id] is not self.active:
                self._answer_assignment(work_order_id, now)

        while True:
            if self.active is None and not self._start_next(now):
                return
            job = self.active
            assert job is not None
            if not job.steps or job.steps[0][0] > now:
                return
            self._record_step(job)

    def _answer_assignment(self, work_order_id: str, now: dt.datetime) -> None:
        job = self.jobs[work_order_id]
        if self.rng.random() < self.behaviour.decline_probability:
            self._record(work_order_id, "declined", {"reason": "no free slot in this shift"}, now)
            self._drop(work_order_id)
            return
        self._record(work_order_id, "accepted", {}, now)
        job.accepted_at = now
        job.ready_at = max(now, job.plan.planned_start or now)
        job.steps.clear()

    def _start_next(self, now: dt.datetime) -> bool:
        """Pick the next job that can start by `now` (corrective first) and plan its steps; False when none can."""
        candidates = []
        for work_order_id, job in self.jobs.items():
            state = self.states.get(work_order_id)
            if state is None or state.status in (S.ASSIGNED, S.NEW) or state.status in FINISHED:
                continue
            travel = dt.timedelta(minutes=self.rng.randint(*self.behaviour.travel_minutes))
            earliest = max(self.free_at, job.accepted_at, job.ready_at - travel)
            start = self.shift.next_working_time(earliest)
            if start <= now:
                candidates.append((job.plan.kind != "corrective", start, work_order_id, travel, state))
        if not candidates:
            return False
        _, start, work_order_id, travel, state = min(candidates)
        job = self.jobs[work_order_id]
        job.steps = collections.deque(self._steps(job, state, start, travel))
        self.active = job
        return True

    def _steps(self, job: Job, state: WorkOrderState, start: dt.datetime, travel: dt.timedelta) -> list[tuple]:
        """Plan the remaining events of a job from its current status, starting at `start`."""
        rng = self.rng
        steps: list[tuple] = []
        time = start
        if state.status in (S.ACCEPTED, S.ON_HOLD):
            steps.append((time, state.status, "travel_started", {}))
            time += travel
            steps.append((time, S.EN_ROUTE, "arrived", {}))
        elif state.status is S.EN_ROUTE:
            time += travel
            steps.append((time, S.EN_ROUTE, "arrived", {}))
        if state.status is not S.IN_PROGRESS:
            time += dt.timedelta(minutes=rng.randint(2, 15))
            steps.append((time, S.ON_SITE, "work_started", {}))
        repair = dt.timedelta(minutes=rng.randint(*REPAIR_MINUTES[job.plan.kind]))
        if not job.was_on_hold and rng.random() < self.behaviour.hold_probability:
            half = repair / 2
            steps.append((time + half, S.IN_PROGRESS, "time_logged", {"minutes": max(1, int(half.total_seconds() // 60))}))
            steps.append((time + half, S.IN_PROGRESS, "hold_started", {"reason": "parts"}))
            return steps
        component = job.plan.payload.get("component")
        if component:
            steps.append((time + repair, S.IN_PROGRESS, "parts_used", {"part_number": str(component), "quantity": 1}))
        minutes = max(1, int(repair.total_seconds() // 60))
        steps.append((time + repair, S.IN_PROGRESS, "time_logged", {"minutes": minutes, "activity": "repair"}))
        summary = f"{component} replaced" if component else "machine inspected"
        steps.append((time + repair, S.IN_PROGRESS, "completed", {"summary": summary, "fixed": True}))
        return steps

    def _record_step(self, job: Job) -> None:
        time, expected_status, event_type, payload = job.steps.popleft()
        work_order_id = job.plan.work_order_id
        state = self.states.get(work_order_id)
        if state is None or state.engineer_id != self.engineer_id or state.status is not expected_status:
            # Reassigned, declined or changed on the server: plan again from the tablet's local state.
            self.abandoned_jobs += 1
            self.active = None
            self.free_at = max(self.free_at, time)
            job.steps.clear()
            return
        self._record(work_order_id, event_type, payload, time)
        self.free_at = max(self.free_at, time)
        if event_type == "hold_started":
            job.was_on_hold = True
            job.ready_at = time + dt.timedelta(hours=self.rng.randint(4, 48))
            self.active = None
        elif event_type == "completed":
            self._drop(work_order_id)

    def _drop(self, work_order_id: str) -> None:
        job = self.jobs.pop(work_order_id, None)
        if job is not None and job is self.active:
            self.active = None

    def _record(self, work_order_id: str, event_type: str, payload: dict, time: dt.datetime) -> None:
        """Record an event and apply its status change to the cached local view, as the SDK's view does."""
        self.client.record(work_order_id, event_type, payload, occurred_at=time)
        self.recorded += 1
        state = self.states.get(work_order_id)
        row = TRANSITION_INDEX.get((state.status, event_type)) if state is not None else None
        if state is not None and row is not None and row.to_state is not None:
            self.states[work_order_id] = msgspec.structs.replace(state, status=row.to_state)


class ReplayDispatcher:
    """An always-online console: creates orders when reported, assigns, reassigns now and then, closes."""

    def __init__(
        self,
        client: SyncClient,
        network: FlakyNetwork,
        rng: random.Random,
        behaviour: ReplayBehaviour,
        shifts: dict[str, Shift],
        plans: list[OrderPlan],
        errors_as_notes: list[MachineError],
    ) -> None:
        self.client = client
        self.network = network
        self.rng = rng
        self.behaviour = behaviour
        self.shifts = shifts
        self.waiting = collections.deque(plans)
        self.plans = {plan.work_order_id: plan for plan in plans}
        self.notes = collections.deque(errors_as_notes)
        self.open: set[str] = set()
        self.open_by_asset: dict[str, set[str]] = collections.defaultdict(set)
        self.recorded = 0
        self.notes_recorded = 0
        self.errors_without_open_order = 0
        self.reassignments = 0
        self.failed_syncs = 0

    @property
    def done(self) -> bool:
        return not self.waiting and not self.open and not self.client.pending_count()

    def tick(self, now: dt.datetime) -> None:
        # The console syncs every step, so the confirmed states are its view. An order with an event
        # still pending (after a failed sync) waits for the next step instead of being acted on twice.
        confirmed = self.client.confirmed_work_orders()
        pending = {entry.event.work_order_id for entry in self.client.pending()}
        states = {
            work_order_id: confirmed[work_order_id]
            for work_order_id in sorted(self.open)
            if work_order_id in confirmed and work_order_id not in pending
        }
        load = collections.Counter(state.engineer_id for state in states.values() if state.status not in FINISHED)
        while self.waiting and self.waiting[0].report_time <= now:
            plan = self.waiting.popleft()
            self._record(plan.work_order_id, "created", plan.payload, plan.report_time)
            engineer_id = self._choose_engineer(plan, load, exclude=None)
            load[engineer_id] += 1
            self._record(plan.work_order_id, "assigned", self._assignment(plan, engineer_id), plan.report_time)
            self.open.add(plan.work_order_id)
            self.open_by_asset[plan.asset_id].add(plan.work_order_id)
        while self.notes and self.notes[0].time <= now:
            self._note(self.notes.popleft(), states)
        for state in states.values():
            self._manage(state, now, load)
        self.sync()

    def sync(self) -> bool:
        try:
            self.client.sync()
        except SyncError as exc:
            # The events stay in the outbox and the next step's sync retries them.
            self.failed_syncs += 1
            log.warning("replay_sync_failed", device_id=self.client.device_id, error=str(exc))
            return False
        return True

    def _manage(self, state: WorkOrderState, now: dt.datetime, load: collections.Counter) -> None:
        plan = self.plans[state.work_order_id]
        if state.status in (S.CLOSED, S.CANCELLED):
            self.open.discard(state.work_order_id)
            self.open_by_asset[plan.asset_id].discard(state.work_order_id)
        elif state.status is S.COMPLETED:
            self._record(state.work_order_id, "closed", {"note": "report checked"}, now)
        elif state.status is S.NEW:
            engineer_id = self._choose_engineer(plan, load, exclude=None)
            load[engineer_id] += 1
            self._record(state.work_order_id, "assigned", self._assignment(plan, engineer_id), now)
        elif state.status in (S.ASSIGNED, S.ACCEPTED) and self.rng.random() < self.behaviour.reassign_probability:
            engineer_id = self._choose_engineer(plan, load, exclude=state.engineer_id)
            load[engineer_id] += 1
            payload = self._assignment(plan, engineer_id)
            payload["reason"] = "rebalanced the team's load"
            self._record(state.work_order_id, "reassigned", payload, now)
            self.reassignments += 1

    def _choose_engineer(self, plan: OrderPlan, load: collections.Counter, exclude: str | None) -> str:
        """Pick the engineer whose shift starts soonest after the planned start, then the least loaded."""
        needed_at = plan.planned_start or plan.report_time
        ranked = sorted(
            (shift.next_working_time(needed_at), load[engineer_id], self.rng.random(), engineer_id)
            for engineer_id, shift in self.shifts.items()
            if engineer_id != exclude
        )
        return ranked[0][3]

    def _assignment(self, plan: OrderPlan, engineer_id: str) -> dict[str, object]:
        payload: dict[str, object] = {"engineer_id": engineer_id}
        if plan.planned_start is not None:
            payload["planned_start"] = plan.planned_start.isoformat()
            payload["planned_end"] = (plan.planned_start + dt.timedelta(hours=4)).isoformat()
        return payload

    def _note(self, error: MachineError, states: dict[str, WorkOrderState]) -> None:
        for work_order_id in sorted(self.open_by_asset[asset_id(error.machine_id)]):
            state = states.get(work_order_id)
            if state is not None and state.status in NOTE_STATUSES:
                text = f"machine reported {error.error_id} at {error.time.isoformat()}"
                self._record(work_order_id, "note_added", {"text": text}, error.time)
                self.notes_recorded += 1
                return
        self.errors_without_open_order += 1

    def _record(self, work_order_id: str, event_type: str, payload: dict, time: dt.datetime) -> None:
        self.client.record(work_order_id, event_type, payload, occurred_at=time)
        self.recorded += 1
