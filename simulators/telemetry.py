"""Figures gathered during a fleet run for the report: decisions over time, queue depth, record-to-decision delay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

from client_sdk import OutboxEntry


@dataclasses.dataclass
class SimulatedClock:
    """Simulated time: `start` plus `minutes_per_tick` for each tick run so far."""

    start: dt.datetime
    minutes_per_tick: int
    tick: int = 0

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.tick * self.minutes_per_tick)


@dataclasses.dataclass(frozen=True)
class DecisionRecord:
    device: str
    event_type: str
    status: str
    reason_code: str
    recorded_tick: int
    decided_tick: int
    seconds_to_decision: float


@dataclasses.dataclass
class Telemetry:
    clock: SimulatedClock
    decisions: list[DecisionRecord] = dataclasses.field(default_factory=list)
    queue_depth: dict[str, list[tuple[int, int]]] = dataclasses.field(default_factory=dict)
    server_outages: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    postgres_restarts: list[int] = dataclasses.field(default_factory=list)
    _recorded: dict[uuid.UUID, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def note_recorded(self, entry: OutboxEntry) -> None:
        self._recorded[entry.event.client_event_id] = (self.clock.tick, time.monotonic())

    def listener(self, device: str):
        """Build an SDK decision listener that stores each first decision of `device`'s events."""

        def on_decision(entry: OutboxEntry) -> None:
            started = self._recorded.pop(entry.event.client_event_id, None)
            if started is None or entry.decision is None:
                return
            recorded_tick, recorded_at = started
            self.decisions.append(
                DecisionRecord(
                    device=device,
                    event_type=entry.event.type,
                    status=entry.decision.status.value,
                    reason_code=entry.decision.reason_code.value,
                    recorded_tick=recorded_tick,
                    decided_tick=self.clock.tick,
                    seconds_to_decision=time.monotonic() - recorded_at,
                )
            )

        return on_decision

    def sample_queue(self, device: str, pending: int) -> None:
        self.queue_depth.setdefault(device, []).append((self.clock.tick, pending))
