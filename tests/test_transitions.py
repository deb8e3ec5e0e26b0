"""The transition table as data, its JSON export, and the fold `apply_event`."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from shared_schema import (
    ACTIVE_STATES,
    EVENT_PAYLOADS,
    EVENT_TYPES,
    FIELD_WORK_TYPES,
    OPEN_STATES,
    PRE_WORK_STATES,
    TERMINAL_STATES,
    TRANSITION_INDEX,
    TRANSITIONS,
    HoldReason,
    Priority,
    Transition,
    WorkOrderStatus,
    apply_event,
    parse_payload,
    transition_table_json,
)
from schema_helpers import (
    ACTIVE,
    ENGINEER_A,
    ENGINEER_B,
    FIELD_WORK,
    KNOWN_TYPES,
    LIFECYCLE,
    OPEN,
    PRE_WORK,
    SCENARIOS,
    T0,
    WORK_ORDER_ID,
    fold_history,
    replay,
    valid_payload,
)

S = WorkOrderStatus
LATER = T0 + dt.timedelta(hours=2)


# --- The table against the lifecycle restated by hand -------------------------------


def test_table_has_restated_rows() -> None:
    assert set(TRANSITION_INDEX) == set(LIFECYCLE)


@pytest.mark.parametrize(
    "key", sorted(LIFECYCLE, key=lambda key: (key[1], str(key[0]))), ids=lambda key: f"{key[0]}-{key[1]}"
)
def test_table_row_matches_lifecycle(key: tuple[WorkOrderStatus | None, str]) -> None:
    row = TRANSITION_INDEX[key]
    rule = LIFECYCLE[key]

    assert row.to_state == rule.to_state
    assert set(row.roles) == rule.roles
    assert row.assigned_engineer_only == rule.assignee_only


def test_table_rows_unique() -> None:
    keys = [(row.from_state, row.event_type) for row in TRANSITIONS]

    assert len(keys) == len(set(keys))


def test_event_types_match_lifecycle() -> None:
    assert set(EVENT_TYPES) == KNOWN_TYPES
    assert set(EVENT_PAYLOADS) == KNOWN_TYPES


def test_state_groups_match_lifecycle() -> None:
    assert PRE_WORK_STATES == PRE_WORK
    assert ACTIVE_STATES == ACTIVE
    assert OPEN_STATES == OPEN
    assert set(TERMINAL_STATES) == {S.CLOSED, S.CANCELLED}


def test_field_work_types_match() -> None:
    assert FIELD_WORK_TYPES == FIELD_WORK


def test_only_reopen_leaves_terminal_state() -> None:
    leaving = {
        (row.from_state, row.event_type)
        for row in TRANSITIONS
        if row.from_state in TERMINAL_STATES and row.to_state is not None
    }

    assert leaving == {(S.CLOSED, "reopened")}


def test_only_created_starts_order() -> None:
    starting = [row.event_type for row in TRANSITIONS if row.from_state is None]

    assert starting == ["created"]


def test_every_state_reachable() -> None:
    reached = {row.to_state for row in TRANSITIONS if row.to_state is not None}

    assert reached == set(WorkOrderStatus)


# --- JSON export for ports ---------------------------------------------------------------


def test_table_json_round_trips() -> None:
    decoded = msgspec.json.decode(transition_table_json(), type=list[Transition])

    assert decoded == list(TRANSITIONS)


def test_table_json_has_every_type() -> None:
    rows = msgspec.json.decode(transition_table_json())
    event_types = {row["event_type"] for row in rows}

    assert event_types == set(EVENT_TYPES)


def test_table_json_row_fields() -> None:
    rows = msgspec.json.decode(transition_table_json())
    creation = next(row for row in rows if row["event_type"] == "created")

    assert set(creation) == {"from_state", "event_type", "to_state", "roles", "assigned_engineer_only"}
    assert creation["from_state"] is None
    assert creation["to_state"] == "new"
    assert sorted(creation["roles"]) == ["admin", "dispatcher", "manager"]


# --- Folding accepted events ------------------------------------------------------------------


def _apply(state, event_type: str, payload: dict | None = None, at: dt.datetime = LATER):
    payload = valid_payload(event_type) if payload is None else payload
    row = TRANSITION_INDEX[(state.status if state else None, event_type)]
    return apply_event(state, WORK_ORDER_ID, parse_payload(event_type, payload), row.to_state, at)


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if name != "absent"])
def test_fold_status_matches_replay(scenario: str) -> None:
    history = SCENARIOS[scenario]
    snapshots = replay(history)

    state = fold_history(history)

    assert state is not None
    assert state.status is snapshots[-1].status
    assert state.engineer_id == snapshots[-1].engineer_id
    assert state.version == len(history)


def test_created_starts_stream() -> None:
    state = _apply(None, "created", at=T0)

    assert state.version == 1
    assert state.status is S.NEW
    assert state.title == "Spindle overheats"
    assert state.priority is Priority.P2
    assert state.created_at == T0
    assert state.updated_at == T0


def test_apply_to_absent_order_raises() -> None:
    payload = parse_payload("assigned", valid_payload("assigned"))

    with pytest.raises(ValueError, match="does not exist"):
        apply_event(None, WORK_ORDER_ID, payload, S.ASSIGNED, LATER)


def test_apply_leaves_input_unchanged() -> None:
    state = fold_history(SCENARIOS["new"])
    before = msgspec.structs.replace(state)

    after = _apply(state, "assigned")

    assert state == before
    assert after.version == 2
    assert after.updated_at == LATER


def test_assignment_sets_engineer_and_version() -> None:
    state = fold_history(SCENARIOS["new"])
    start = T0 + dt.timedelta(days=1)

    after = _apply(state, "assigned", {"engineer_id": ENGINEER_B, "planned_start": start.isoformat()})

    assert after.engineer_id == ENGINEER_B
    assert after.planned_start == start
    assert after.assignment_version == 2


def test_unassign_clears_engineer() -> None:
    state = fold_history(SCENARIOS["assigned"])

    after = _apply(state, "unassigned")

    assert after.status is S.NEW
    assert after.engineer_id is None
    assert after.assignment_version == 3


def test_decline_clears_engineer() -> None:
    state = fold_history(SCENARIOS["new_after_decline"])

    assert state.status is S.NEW
    assert state.engineer_id is None
    assert state.assignment_version == 3


def test_cancel_records_version() -> None:
    state = fold_history(SCENARIOS["cancelled_on_hold"])

    assert state.status is S.CANCELLED
    assert state.cancelled_version == state.version
    assert state.closed_version == 0


def test_close_records_version() -> None:
    state = fold_history(SCENARIOS["closed"])

    assert state.status is S.CLOSED
    assert state.closed_version == state.version


def test_hold_sets_and_resume_clears() -> None:
    on_hold = fold_history(SCENARIOS["on_hold"])
    resumed = _apply(on_hold, "work_resumed")

    assert on_hold.hold_reason is HoldReason.PARTS
    assert resumed.hold_reason is None
    assert resumed.status is S.IN_PROGRESS


def test_second_visit_counts() -> None:
    en_route_again = fold_history(SCENARIOS["en_route_second_visit"])
    second_visit = _apply(en_route_again, "arrived")

    assert en_route_again.hold_reason is None
    assert en_route_again.visit_count == 1
    assert second_visit.visit_count == 2


def test_reopen_keeps_engineer_without_id() -> None:
    state = fold_history(SCENARIOS["reopened"])
    closed = fold_history(SCENARIOS["closed"])

    assert state.status is S.ASSIGNED
    assert state.engineer_id == ENGINEER_A
    assert state.assignment_version == closed.assignment_version


def test_reopen_to_other_engineer() -> None:
    state = fold_history(SCENARIOS["reopened_to_b"])

    assert state.status is S.ASSIGNED
    assert state.engineer_id == ENGINEER_B
    assert state.assignment_version == state.version


def test_reopen_to_same_engineer() -> None:
    closed = fold_history(SCENARIOS["closed"])

    after = _apply(closed, "reopened", valid_payload("reopened", ENGINEER_A))

    assert after.engineer_id == ENGINEER_A
    assert after.assignment_version == closed.assignment_version


def test_priority_change_keeps_status() -> None:
    state = fold_history(SCENARIOS["in_progress"])

    after = _apply(state, "priority_changed")

    assert after.priority is Priority.P1
    assert after.status is S.IN_PROGRESS


@pytest.mark.parametrize("event_type", ["note_added", "parts_used", "time_logged", "attachment_added",
                                        "checklist_updated", "signature_captured"])
def test_record_keeps_status(event_type: str) -> None:
    state = fold_history(SCENARIOS["in_progress"])

    after = _apply(state, event_type)

    assert after.status is S.IN_PROGRESS
    assert after.version == state.version + 1
    assert after.engineer_id == state.engineer_id
