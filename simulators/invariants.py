"""End-of-run checks that the server and every tablet agree and nothing was lost or duplicated."""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
from collections.abc import Callable

import httpx
import msgspec

from client_sdk import SyncClient
from shared_schema import (
    ChangesPage,
    DecisionBatch,
    EventBatch,
    RecordedEvent,
    TRANSITION_INDEX,
    WorkOrderPage,
    WorkOrderState,
    apply_event,
    parse_payload,
)

from .kpi_check import kpi_problems


@dataclasses.dataclass
class DeviceView:
    """A device's outbox and a direct, fault-free connection with the device's own token."""

    name: str
    client: SyncClient
    http: httpx.Client
    """Client with the device's own token, talking to the server without injected faults."""


@dataclasses.dataclass
class Findings:
    invariants: dict[str, bool | None] = dataclasses.field(default_factory=dict)
    violations: list[str] = dataclasses.field(default_factory=list)
    not_checked: dict[str, str] = dataclasses.field(default_factory=dict)

    def check(self, name: str, problems: list[str]) -> None:
        self.invariants[name] = not problems
        self.violations.extend(f"{name}: {problem}" for problem in problems[:20])

    def skip(self, name: str, reason: str) -> None:
        """Record an invariant as not checked: None in `invariants`, neither held nor violated."""
        self.invariants[name] = None
        self.not_checked[name] = reason


def fetch_log(office: httpx.Client) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    cursor = "0"
    while True:
        response = office.get("/v1/sync/changes", params={"since": cursor, "limit": 5000})
        response.raise_for_status()
        page = msgspec.json.decode(response.content, type=ChangesPage)
        events.extend(page.events)
        cursor = page.next_cursor
        if not page.has_more:
            return events


def fetch_work_orders(office: httpx.Client) -> dict[str, WorkOrderState]:
    states: dict[str, WorkOrderState] = {}
    params: dict[str, str | int] = {"limit": 1000}
    while True:
        response = office.get("/v1/work-orders", params=params)
        response.raise_for_status()
        page = msgspec.json.decode(response.content, type=WorkOrderPage)
        states.update({state.work_order_id: state for state in page.items})
        if page.next_cursor is None:
            return states
        params["cursor"] = page.next_cursor


def check_all(
    devices: list[DeviceView],
    engineers: dict[str, SyncClient],
    office: httpx.Client,
    verify_projections: Callable[[], list[str]],
    compare_kpi: bool = True,
    own_order_prefix: str | None = None,
) -> Findings:
    """Run every end-of-run check; `office` reads the log, `verify_projections` runs `csdp projections verify`.

    `compare_kpi` False leaves out the comparison of /v1/kpi with the
    reference computation. Runs whose orders carry SLA contracts pass False,
    because the reference does not model contracts, and compare figures of their own.

    `own_order_prefix` is given for a run against a server it did not start.
    The KPI figures cover the whole log, so they are compared only when every
    order on the server starts with that prefix and names no contract.
    Otherwise the invariant is recorded as not checked, with the reason.
    """
    findings = Findings()
    log = fetch_log(office)
    server_states = fetch_work_orders(office)
    entries = {device.name: device.client.outbox() for device in devices}

    findings.check(
        "every_recorded_event_decided",
        [
            f"{name} event {entry.event.client_event_id} ({entry.event.type}) is still pending"
            for name, outbox in entries.items()
            for entry in outbox
            if entry.decision is None
        ],
    )
    findings.check("one_decision_per_event_on_replay", _replay_problems(devices, entries))
    findings.check("no_duplicate_event", _duplicate_problems(log))

    logged = {event.client_event_id: event for event in log}
    findings.check(
        "accepted_events_in_log",
        [
            f"{name} event {entry.event.client_event_id} was accepted but is not in the log"
            for name, outbox in entries.items()
            for entry in outbox
            if entry.decision is not None and entry.decision.event_id is not None and entry.event.client_event_id not in logged
        ],
    )
    findings.check("projection_equals_log_fold", _fold_problems(log, server_states))
    findings.check("tablets_converged", _convergence_problems(engineers, server_states))
    findings.check("projections_equal_rebuild", verify_projections())
    if compare_kpi:
        reason = _kpi_skip_reason(server_states, own_order_prefix)
        if reason:
            findings.skip("kpi_equal_independent_computation", reason)
        else:
            findings.check("kpi_equal_independent_computation", kpi_problems(office, log))
    return findings


def _kpi_skip_reason(server_states: dict[str, WorkOrderState], own_order_prefix: str | None) -> str | None:
    if own_order_prefix is None:
        return None
    foreign = sorted(key for key in server_states if not key.startswith(own_order_prefix))
    if foreign:
        return f"the server holds {len(foreign)} orders this run did not create, e.g. {foreign[0]}"
    with_contract = sorted(key for key, state in server_states.items() if state.contract_id is not None)
    if with_contract:
        return f"{len(with_contract)} orders name a contract, e.g. {with_contract[0]}"
    return None


def projections_verify_command(environment: dict[str, str]) -> Callable[[], list[str]]:
    """Build a check that runs `csdp projections verify` over the store named in `environment`."""

    def verify() -> list[str]:
        command = [sys.executable, "-m", "server.cli", "projections", "verify"]
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
        if result.returncode == 0:
            return []
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        return [f"csdp projections verify exited with {result.returncode}: {line}" for line in lines[-20:]]

    return verify


def _replay_problems(devices: list[DeviceView], entries: dict[str, list]) -> list[str]:
    """Send every recorded event again: each must come back as a replay of its one stored decision."""
    problems: list[str] = []
    for device in devices:
        outbox = entries[device.name]
        for start in range(0, len(outbox), 500):
            chunk = outbox[start : start + 500]
            body = msgspec.json.encode(EventBatch(events=[entry.event for entry in chunk]))
            response = device.http.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
            if response.status_code != 200:
                problems.append(f"{device.name}: replay returned HTTP {response.status_code}: {response.text[:200]}")
                continue
            replayed = msgspec.json.decode(response.content, type=DecisionBatch).decisions
            for entry, decision in zip(chunk, replayed, strict=True):
                stored = entry.decision
                if not decision.replay:
                    problems.append(f"{device.name}: {entry.event.client_event_id} was decided again, not replayed")
                elif stored is not None and (
                    (stored.status, stored.event_id, stored.stream_version)
                    != (decision.status, decision.event_id, decision.stream_version)
                ):
                    problems.append(f"{device.name}: {entry.event.client_event_id} replay differs from its decision")
    return problems


def _duplicate_problems(log: list[RecordedEvent]) -> list[str]:
    problems: list[str] = []
    counts = collections.Counter(event.client_event_id for event in log)
    problems.extend(f"event {client_id} is in the log {count} times" for client_id, count in counts.items() if count > 1)
    versions: dict[str, list[int]] = collections.defaultdict(list)
    for event in log:
        versions[event.work_order_id].append(event.stream_version)
    for work_order_id, seen in versions.items():
        if seen != list(range(1, len(seen) + 1)):
            problems.append(f"stream {work_order_id} has versions {seen[:10]}..., expected 1..{len(seen)}")
    positions = [event.global_position for event in log]
    if positions != sorted(set(positions)):
        problems.append("global positions repeat or go backwards")
    return problems


def _fold_problems(log: list[RecordedEvent], server_states: dict[str, WorkOrderState]) -> list[str]:
    """Rebuild every order from the log alone and compare with the work_orders_current projection."""
    folded: dict[str, WorkOrderState] = {}
    for event in log:
        state = folded.get(event.work_order_id)
        row = TRANSITION_INDEX[(state.status if state else None, event.type)]
        payload = parse_payload(event.type, event.payload)
        folded[event.work_order_id] = apply_event(state, event.work_order_id, payload, row.to_state, event.effective_time)
    problems = [
        f"order {work_order_id}: projection differs from the fold of its events"
        for work_order_id, state in folded.items()
        if msgspec.to_builtins(server_states.get(work_order_id)) != msgspec.to_builtins(state)
    ]
    problems.extend(f"order {key} is in the projection but has no events" for key in server_states.keys() - folded.keys())
    return problems


def _convergence_problems(engineers: dict[str, SyncClient], server_states: dict[str, WorkOrderState]) -> list[str]:
    problems: list[str] = []
    for engineer_id, client in engineers.items():
        for work_order_id, server_state in server_states.items():
            if server_state.engineer_id != engineer_id:
                continue
            local = client.work_order(work_order_id)
            if msgspec.to_builtins(local) != msgspec.to_builtins(server_state):
                local_text = f"{local.status.value} v{local.version}" if local else "missing"
                problems.append(
                    f"{engineer_id} sees {work_order_id} as {local_text}, "
                    f"the server has {server_state.status.value} v{server_state.version}"
                )
    return problems
