"""Simulated dispatcher and field engineers, each with its own SDK file."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import httpx

from client_sdk import SyncClient, SyncError
from shared_schema import Actor, Role, WorkOrderState, WorkOrderStatus

from .faults import FlakyNetwork

S = WorkOrderStatus
HOLD_REASONS = ("parts", "customer", "access", "other")


@dataclasses.dataclass
class Behaviour:
    """Probabilities per tick that shape the fleet's behaviour."""

    offline_probability: float = 0.05
    max_offline_ticks: int = 12
    lost_response_rate: float = 0.05
    act_probability: float = 0.6
    decline_probability: float = 0.05
    hold_probability: float = 0.15
    leave_on_hold_probability: float = 0.4
    reassign_probability: float = 0.03
    cancel_probability: float = 0.01
    orders_per_tick: int = 2


def _client(
    path: Path, base_url: str, token: str, device_id: str, actor: Actor, network: FlakyNetwork
) -> SyncClient:
    http = httpx.Client(base_url=base_url, transport=network, timeout=30)
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
    )


class EngineerAgent:
    """A tablet that works its assigned orders and syncs whenever it is online."""

    def __init__(self, engineer_id: str, folder: Path, base_url: str, token: str, rng: random.Random, behaviour: Behaviour):
        self.engineer_id = engineer_id
        self.rng = rng
        self.behaviour = behaviour
        self.network = FlakyNetwork(rng, behaviour.lost_response_rate)
        actor = Actor(subject=engineer_id, role=Role.ENGINEER, engineer_id=engineer_id)
        self.client = _client(folder / f"{engineer_id}.sqlite3", base_url, token, f"tablet-{engineer_id}", actor, self.network)
        self.offline_ticks_left = 0
        self.recorded = 0
        self.failed_syncs = 0

    def tick(self) -> None:
        self._update_connectivity()
        if self.rng.random() < self.behaviour.act_probability:
            self._work()
        if not self.network.offline:
            self.sync()

    def sync(self) -> bool:
        try:
            self.client.sync()
        except SyncError:
            self.failed_syncs += 1
            return False
        return True

    def go_online(self) -> None:
        self.offline_ticks_left = 0
        self.network.offline = False

    def _update_connectivity(self) -> None:
        if self.offline_ticks_left > 0:
            self.offline_ticks_left -= 1
            self.network.offline = self.offline_ticks_left > 0
        elif self.rng.random() < self.behaviour.offline_probability:
            self.offline_ticks_left = self.rng.randint(1, self.behaviour.max_offline_ticks)
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
            self.client.record(order.work_order_id, event_type, payload)
            self.recorded += 1

    def _next_steps(self, order: WorkOrderState) -> list[tuple[str, dict]]:
        rng, behaviour = self.rng, self.behaviour
        match order.status:
            case S.ASSIGNED:
                if rng.random() < behaviour.decline_probability:
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
                if rng.random() < 0.5:
                    records.append(("parts_used", {"part_number": f"P-{rng.randint(100, 999)}", "quantity": 1}))
                if rng.random() < behaviour.hold_probability:
                    records.append(("hold_started", {"reason": rng.choice(HOLD_REASONS)}))
                else:
                    records.append(("completed", {"summary": "fault repaired", "fixed": True}))
                return records
            case S.ON_HOLD:
                if rng.random() < behaviour.leave_on_hold_probability:
                    return [("travel_started", {})]
                return [("work_resumed", {})]
        return []


class DispatcherAgent:
    """An always-online console that creates, assigns, reassigns, cancels and closes orders."""

    def __init__(
        self,
        folder: Path,
        base_url: str,
        token: str,
        engineers: list[str],
        orders: int,
        rng: random.Random,
        behaviour: Behaviour,
    ):
        self.rng = rng
        self.behaviour = behaviour
        self.engineers = engineers
        self.orders_to_create = orders
        self.created = 0
        self.recorded = 0
        self.network = FlakyNetwork(rng, behaviour.lost_response_rate)
        actor = Actor(subject="dispatcher-1", role=Role.DISPATCHER)
        self.client = _client(folder / "dispatcher.sqlite3", base_url, token, "dispatch-console", actor, self.network)

    @property
    def done(self) -> bool:
        if self.created < self.orders_to_create:
            return False
        states = self.client.work_orders().values()
        return all(state.status in (S.CLOSED, S.CANCELLED) for state in states) and not self.client.pending_count()

    def tick(self) -> None:
        rng, behaviour = self.rng, self.behaviour
        for _ in range(behaviour.orders_per_tick):
            if self.created < self.orders_to_create:
                self.created += 1
                self._record(
                    f"wo-{self.created:05d}",
                    "created",
                    {
                        "title": f"Simulated fault {self.created}",
                        "site_id": f"site-{rng.randint(1, 5)}",
                        "priority": rng.choice(["P1", "P2", "P3", "P4"]),
                    },
                )
        for state in sorted(self.client.work_orders().values(), key=lambda item: item.work_order_id):
            self._manage(state)
        try:
            self.client.sync()
        except SyncError:
            pass  # the next tick retries; events stay in the outbox

    def _manage(self, state: WorkOrderState) -> None:
        rng, behaviour = self.rng, self.behaviour
        if state.status is S.NEW:
            self._record(state.work_order_id, "assigned", {"engineer_id": rng.choice(self.engineers)})
        elif state.status is S.COMPLETED:
            self._record(state.work_order_id, "closed", {"note": "reviewed"})
        elif state.status in (S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE):
            roll = rng.random()
            if roll < behaviour.cancel_probability:
                self._record(state.work_order_id, "cancelled", {"reason": "customer fixed it"})
            elif roll < behaviour.cancel_probability + behaviour.reassign_probability:
                others = [engineer for engineer in self.engineers if engineer != state.engineer_id] or self.engineers
                self._record(state.work_order_id, "reassigned", {"engineer_id": rng.choice(others)})

    def _record(self, work_order_id: str, event_type: str, payload: dict) -> None:
        self.client.record(work_order_id, event_type, payload)
        self.recorded += 1
