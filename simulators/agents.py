"""Simulated dispatcher and field engineers, each with its own SDK file and fault-injecting transport."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import httpx

from client_sdk import SyncClient, SyncError
from shared_schema import Actor, Role, WorkOrderState, WorkOrderStatus

from .faults import FlakyNetwork, NetworkFaults
from .scenario import Scenario
from .telemetry import Telemetry

S = WorkOrderStatus
HOLD_REASONS = ("parts", "customer", "access", "other")
PRIORITIES = ("P1", "P2", "P3", "P4")


def simulated_client(
    path: Path,
    base_url: str,
    token: str,
    device_id: str,
    actor: Actor,
    network: FlakyNetwork,
    *,
    batch_size: int | None = None,
    timeout: float = 30,
) -> SyncClient:
    """An SDK client whose requests go through `network`, retrying at once: simulated time does not sleep."""
    http = httpx.Client(base_url=base_url, transport=network, timeout=timeout)
    options = {} if batch_size is None else {"batch_size": batch_size}
    return SyncClient(
        path,
        base_url,
        token,
        device_id=device_id,
        actor=actor,
        http=http,
        max_attempts=6,
        initial_backoff=0.01,
        max_backoff=0.05,
        sleep=lambda seconds: None,
        **options,
    )


def network_faults(scenario: Scenario) -> NetworkFaults:
    faults = scenario.faults
    return NetworkFaults(
        lost_response_rate=faults.lost_response_rate,
        connection_reset_rate=faults.connection_reset_rate,
        burst_503_rate=faults.burst_503_rate,
        burst_503_length=faults.burst_503_length,
    )


class Device:
    """Base of the dispatcher console and the tablets: an SDK client, a flaky network and a skewed clock."""

    def __init__(
        self,
        name: str,
        device_id: str,
        actor: Actor,
        folder: Path,
        base_url: str,
        token: str,
        rng: random.Random,
        scenario: Scenario,
        telemetry: Telemetry,
    ) -> None:
        self.name = name
        self.rng = rng
        self.scenario = scenario
        self.telemetry = telemetry
        self.network = FlakyNetwork(random.Random(rng.random()), network_faults(scenario))
        self.client = simulated_client(folder / f"{name}.sqlite3", base_url, token, device_id, actor, self.network)
        self.client.add_listener(telemetry.listener(name))
        skew = scenario.clock.max_skew_minutes
        self.clock_skew = dt.timedelta(minutes=rng.uniform(-skew, skew)) if skew else dt.timedelta(0)
        self.recorded = 0
        self.failed_syncs = 0

    def record(self, work_order_id: str, event_type: str, payload: dict) -> None:
        occurred_at = self.telemetry.clock.now() + self.clock_skew
        entry = self.client.record(work_order_id, event_type, payload, occurred_at=occurred_at)
        self.telemetry.note_recorded(entry)
        self.recorded += 1

    def sync(self) -> bool:
        try:
            self.client.sync()
        except SyncError:
            self.failed_syncs += 1
            return False
        return True


class EngineerAgent(Device):
    """A tablet that works its assigned orders and syncs whenever it is online."""

    def __init__(self, engineer_id: str, folder: Path, base_url: str, token: str, rng: random.Random, scenario: Scenario, telemetry: Telemetry):
        actor = Actor(subject=engineer_id, role=Role.ENGINEER, engineer_id=engineer_id)
        super().__init__(engineer_id, f"tablet-{engineer_id}", actor, folder, base_url, token, rng, scenario, telemetry)
        self.engineer_id = engineer_id
        self.offline_ticks_left = 0

    def tick(self) -> None:
        self._update_connectivity()
        if self.rng.random() < self.scenario.technician.act_probability:
            self._work()
        if not self.network.offline:
            self.sync()

    def go_online(self) -> None:
        self.offline_ticks_left = 0
        self.network.offline = False

    def _update_connectivity(self) -> None:
        connectivity = self.scenario.connectivity
        if self.offline_ticks_left > 0:
            self.offline_ticks_left -= 1
            self.network.offline = self.offline_ticks_left > 0
        elif self.rng.random() < connectivity.offline_probability:
            self.offline_ticks_left = self.rng.randint(1, connectivity.max_offline_ticks)
            self.network.offline = True

    def _work(self) -> None:
        orders = [
            state
            for state in self.client.my_work_orders().values()
            if state.status not in (S.COMPLETED, S.CLOSED, S.CANCELLED, S.NEW)
        ]
        if not orders:
            return
        order = self.rng.choice(sorted(orders, key=lambda state: state.work_order_id))
        for event_type, payload in self._next_steps(order):
            self.record(order.work_order_id, event_type, payload)

    def _next_steps(self, order: WorkOrderState) -> list[tuple[str, dict]]:
        rng, technician = self.rng, self.scenario.technician
        match order.status:
            case S.ASSIGNED:
                if rng.random() < technician.decline_probability:
                    return [("declined", {"reason": "no capacity this week"})]
                return [("accepted", {})]
            case S.ACCEPTED:
                return [("travel_started", {})]
            case S.EN_ROUTE:
                return [("arrived", {})]
            case S.ON_SITE:
                return [("work_started", {}), ("note_added", {"text": "machine inspected"})]
            case S.IN_PROGRESS:
                records = [("time_logged", {"minutes": rng.randint(15, 240), "activity": "repair"})]
                if rng.random() < technician.parts_probability:
                    records.append(("parts_used", {"part_number": f"P-{rng.randint(100, 999)}", "quantity": 1}))
                if rng.random() < technician.hold_probability:
                    records.append(("hold_started", {"reason": rng.choice(HOLD_REASONS)}))
                else:
                    records.append(("completed", {"summary": "fault repaired", "fixed": True}))
                return records
            case S.ON_HOLD:
                # Leaving the site while waiting for parts makes the next arrival a new visit.
                if rng.random() < technician.leave_on_hold_probability:
                    return [("travel_started", {})]
                return [("work_resumed", {})]
        return []


class DispatcherAgent(Device):
    """An always-online console that creates, assigns, reassigns, reprioritises, cancels and closes orders."""

    def __init__(
        self,
        folder: Path,
        base_url: str,
        token: str,
        engineers: list[str],
        rng: random.Random,
        scenario: Scenario,
        telemetry: Telemetry,
        order_prefix: str = "wo-",
    ):
        actor = Actor(subject="dispatcher-1", role=Role.DISPATCHER)
        super().__init__("dispatcher-1", "dispatch-console", actor, folder, base_url, token, rng, scenario, telemetry)
        self.engineers = engineers
        self.orders_to_create = scenario.fleet.orders
        self.created = 0
        self.order_prefix = order_prefix

    @property
    def done(self) -> bool:
        if self.created < self.orders_to_create:
            return False
        states = self.client.work_orders().values()
        return all(state.status in (S.CLOSED, S.CANCELLED) for state in states) and not self.client.pending_count()

    def _due_orders(self) -> int:
        """Orders created by now: `orders_per_day` spread evenly over each simulated day, at least one per tick."""
        fleet = self.scenario.fleet
        elapsed_days = self.telemetry.clock.tick * fleet.minutes_per_tick / (24 * 60)
        return min(self.orders_to_create, max(self.telemetry.clock.tick, int(fleet.orders_per_day * elapsed_days)))

    def tick(self) -> None:
        rng = self.rng
        while self.created < self._due_orders():
            self.created += 1
            self.record(
                f"{self.order_prefix}{self.created:05d}",
                "created",
                {
                    "title": f"Simulated fault {self.created}",
                    "site_id": f"site-{rng.randint(1, 5)}",
                    "asset_id": f"asset-{rng.randint(1, 20)}",
                    "priority": rng.choice(PRIORITIES),
                },
            )
        for state in sorted(self.client.work_orders().values(), key=lambda item: item.work_order_id):
            self._manage(state)
        self.sync()

    def _manage(self, state: WorkOrderState) -> None:
        rng, dispatcher = self.rng, self.scenario.dispatcher
        if state.status is S.NEW:
            self.record(state.work_order_id, "assigned", {"engineer_id": rng.choice(self.engineers)})
        elif state.status is S.COMPLETED:
            self.record(state.work_order_id, "closed", {"note": "reviewed"})
        elif state.status in (S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE):
            roll = rng.random()
            thresholds = (
                dispatcher.cancel_probability,
                dispatcher.cancel_probability + dispatcher.reassign_probability,
                dispatcher.cancel_probability + dispatcher.reassign_probability + dispatcher.unassign_probability,
            )
            if roll < thresholds[0]:
                self.record(state.work_order_id, "cancelled", {"reason": "customer fixed it"})
            elif roll < thresholds[1]:
                others = [engineer for engineer in self.engineers if engineer != state.engineer_id] or self.engineers
                self.record(state.work_order_id, "reassigned", {"engineer_id": rng.choice(others)})
            elif roll < thresholds[2]:
                self.record(state.work_order_id, "unassigned", {"reason": "engineer needed elsewhere"})
        if state.status not in (S.COMPLETED, S.CLOSED, S.CANCELLED) and rng.random() < dispatcher.reprioritise_probability:
            priorities = [priority for priority in PRIORITIES if priority != state.priority.value]
            self.record(state.work_order_id, "priority_changed", {"priority": rng.choice(priorities)})
