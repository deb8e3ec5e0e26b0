"""The exported SDK contract: freshness of the checked-in copy, vector replay from JSON, coverage, CLI errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from server.cli import main
from server.contract.export import export_contract
from shared_schema import (
    EVENT_PAYLOADS,
    Actor,
    DecisionStatus,
    HeldReview,
    ProposedEvent,
    ReasonCode,
    WorkOrderState,
    WorkOrderStatus,
    apply_event,
    clamp_effective_time,
    content_fingerprint,
    decide,
    parse_payload,
)

CHECKED_IN = Path(__file__).resolve().parent.parent / "shared_schema" / "contract"
CONFORMANCE = CHECKED_IN / "conformance"
CSDP = Path(sys.executable).parent / "csdp"
REFRESH_HINT = (
    "the checked-in contract is out of date: run `csdp contract export shared_schema/contract` and commit the result"
)


def relative_files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def load(name: str) -> Any:
    """Decode a conformance file into plain JSON values, as a port without the Python types would."""
    return msgspec.json.decode((CONFORMANCE / name).read_bytes())


def decision_vectors() -> list[dict[str, Any]]:
    return load("matrix.json") + load("arbitration.json")


def transition_rows() -> list[dict[str, Any]]:
    return msgspec.json.decode((CHECKED_IN / "transitions.json").read_bytes())


def as_json(value: Any) -> Any:
    """Encode a struct and decode it back to plain JSON values, for comparison with a vector."""
    return msgspec.json.decode(msgspec.json.encode(value))


# --- Freshness of the checked-in copy ---------------------------------------------


def test_checked_in_contract_is_fresh(tmp_path):
    export_contract(tmp_path)
    fresh = relative_files(tmp_path)
    checked_in = relative_files(CHECKED_IN)

    assert sorted(checked_in) == sorted(fresh), REFRESH_HINT
    for name, content in fresh.items():
        assert checked_in[name] == content, f"{name} differs from a fresh export: {REFRESH_HINT}"


def test_export_is_byte_identical_twice(tmp_path):
    export_contract(tmp_path / "first")
    export_contract(tmp_path / "second")

    assert relative_files(tmp_path / "first") == relative_files(tmp_path / "second")


def test_export_files_end_with_newline(tmp_path):
    export_contract(tmp_path)

    for name, content in relative_files(tmp_path).items():
        assert content.endswith(b"\n"), name
        msgspec.json.decode(content)


def test_schemas_cover_every_payload_type(tmp_path):
    export_contract(tmp_path)
    for event_type in EVENT_PAYLOADS:
        assert (tmp_path / "schemas" / "payloads" / f"{event_type}.json").is_file(), event_type

    schema = msgspec.json.decode((tmp_path / "schemas" / "payloads" / "hold_started.json").read_bytes())

    definition = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    assert definition["required"] == ["reason"]
    assert "additionalProperties" in definition


# --- Replaying the vectors from JSON ------------------------------------------------


def replay_decision(vector: dict[str, Any]) -> dict[str, Any]:
    state = msgspec.convert(vector["state_before"], WorkOrderState | None)
    event = msgspec.convert(vector["event"], ProposedEvent)
    actor = msgspec.convert(vector["actor"], Actor)
    effective_time = msgspec.convert(vector["effective_time"], dt.datetime)
    review = msgspec.convert(vector["review"], HeldReview | None)
    causation = vector["causation"]
    causation_pair = (DecisionStatus(causation["status"]), causation["client_event_id"]) if causation else None

    outcome = decide(state, event, actor, effective_time, causation_pair, review)
    return {
        "status": outcome.status.value,
        "reason_code": outcome.reason_code.value,
        "message": outcome.message,
        "state_after": as_json(outcome.state),
    }


def test_decision_vectors_replay():
    vectors = decision_vectors()
    mismatches = [vector["id"] for vector in vectors if replay_decision(vector) != vector["expected"]]

    assert len(vectors) > 1000
    assert mismatches == []


def test_accepted_vectors_replay_through_apply_event():
    to_states = {(row["from_state"], row["event_type"]): row["to_state"] for row in transition_rows()}
    accepted = [vector for vector in decision_vectors() if vector["expected"]["status"] == "ACCEPTED"]
    mismatches = []
    for vector in accepted:
        state = msgspec.convert(vector["state_before"], WorkOrderState | None)
        event = vector["event"]
        from_state = state.status.value if state else None
        to_state = to_states[(from_state, event["type"])]
        after = apply_event(
            state,
            event["work_order_id"],
            parse_payload(event["type"], event["payload"]),
            WorkOrderStatus(to_state) if to_state else None,
            msgspec.convert(vector["effective_time"], dt.datetime),
        )
        if as_json(after) != vector["expected"]["state_after"]:
            mismatches.append(vector["id"])

    assert len(accepted) > 200
    assert mismatches == []


def test_rejected_vectors_keep_state():
    for vector in decision_vectors():
        if vector["expected"]["status"] != "ACCEPTED":
            assert vector["expected"]["state_after"] == vector["state_before"], vector["id"]


def test_idempotency_vectors_replay():
    vectors = load("idempotency.json")
    for vector in vectors:
        first = msgspec.convert(vector["first"], ProposedEvent)
        second = msgspec.convert(vector["second"], ProposedEvent)
        same_content = content_fingerprint(first) == content_fingerprint(second)

        assert vector["expected"] == ("replay" if same_content else "idempotency_key_reused"), vector["id"]
    assert {vector["expected"] for vector in vectors} == {"replay", "idempotency_key_reused"}


def test_effective_time_vectors_replay():
    for vector in load("effective_time.json"):
        previous = vector["previous_effective_time"]
        result = clamp_effective_time(
            msgspec.convert(vector["occurred_at"], dt.datetime),
            msgspec.convert(vector["recorded_at"], dt.datetime),
            msgspec.convert(previous, dt.datetime) if previous else None,
            dt.timedelta(seconds=vector["skew_tolerance_seconds"]),
        )

        assert as_json(result) == vector["expected_effective_time"], vector["id"]


# --- Coverage -------------------------------------------------------------------------


def test_every_reason_code_has_vector():
    seen = {vector["expected"]["reason_code"] for vector in decision_vectors()}
    seen |= {vector["expected"] for vector in load("idempotency.json")}

    missing = sorted(code.value for code in ReasonCode if code.value not in seen)
    assert missing == []


def test_every_decision_status_has_vector():
    seen = {vector["expected"]["status"] for vector in decision_vectors()}

    assert seen == {status.value for status in DecisionStatus}


def test_every_transition_row_and_role_has_accepted_vector():
    accepted = {
        (
            vector["state_before"]["status"] if vector["state_before"] else None,
            vector["event"]["type"],
            vector["actor"]["role"],
        )
        for vector in decision_vectors()
        if vector["expected"]["status"] == "ACCEPTED"
    }
    missing = [
        (row["from_state"], row["event_type"], role)
        for row in transition_rows()
        for role in row["roles"]
        if (row["from_state"], row["event_type"], role) not in accepted
    ]

    assert missing == []


def test_matrix_covers_every_status_type_and_role():
    matrix = load("matrix.json")
    combinations = {
        (
            vector["state_before"]["status"] if vector["state_before"] else None,
            vector["event"]["type"],
            vector["actor"]["role"],
        )
        for vector in matrix
    }
    statuses = [None, *(status.value for status in WorkOrderStatus)]
    types = sorted({row["event_type"] for row in transition_rows()})
    roles = ["engineer", "dispatcher", "manager", "admin", "system"]

    expected = {(status, event_type, role) for status in statuses for event_type in types for role in roles}
    assert combinations == expected


def test_vector_ids_are_unique():
    ids = [vector["id"] for vector in decision_vectors()]

    assert len(ids) == len(set(ids))


# --- The export command -----------------------------------------------------------------


def test_export_command_writes_files(tmp_path):
    result = CliRunner().invoke(main, ["contract", "export", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "reasons.json").is_file()
    assert (tmp_path / "out" / "conformance" / "matrix.json").is_file()


def test_export_command_rejects_file(tmp_path):
    target = tmp_path / "contract.json"
    target.write_text("{}")

    result = subprocess.run([str(CSDP), "contract", "export", str(target)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "it is a file, not a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "{}"


def test_export_command_rejects_path_below_file(tmp_path):
    target = tmp_path / "contract.json"
    target.write_text("{}")

    result = subprocess.run(
        [str(CSDP), "contract", "export", str(target / "sub")], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "cannot export the contract" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_export_command_rejects_read_only_folder(tmp_path):
    target = tmp_path / "read-only"
    target.mkdir()
    target.chmod(0o500)
    try:
        result = subprocess.run(
            [str(CSDP), "contract", "export", str(target)], capture_output=True, text=True, timeout=60
        )
    finally:
        target.chmod(0o700)

    assert result.returncode == 1
    assert "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_command_rejects_unwritable_system_path():
    # /proc accepts no new entries, even from root, so this checks the error path where permissions cannot.
    result = subprocess.run(
        [str(CSDP), "contract", "export", "/proc/csdp-contract"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "cannot export the contract into /proc/csdp-contract" in result.stderr
    assert "Traceback" not in result.stderr
