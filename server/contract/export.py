"""Export of the contract files: JSON Schemas, the transition table, reason codes and conformance vectors.

Every file is encoded with sorted keys, two-space indentation and a trailing
newline, so exporting twice gives identical bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from shared_schema import (
    BlobUploadRequest,
    BlobUploadStatus,
    EVENT_PAYLOADS,
    LEGACY_SCHEMA_VERSION,
    SCHEMA_VERSION,
    REASON_SENTENCES,
    REASON_STATUS,
    Actor,
    ChangesPage,
    DecisionBatch,
    EventBatch,
    EventDecision,
    HeldReview,
    ProposedEvent,
    ReasonCode,
    RecordedEvent,
    TimelineEntry,
    Transition,
    TypedEvent,
    WorkOrderPage,
    WorkOrderState,
    transition_table_json,
)

from shared_schema.protocol import (
    CURSOR_HEADER,
    EPOCH_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_NEWER_SENTENCE,
    PROTOCOL_VERSION,
    SDK_HEADER,
    SIGNAL_SENTENCES,
    SIGNAL_STATUS,
    SUPPORTED_PROTOCOL_VERSIONS,
    SyncSignal,
)

from .vectors import (
    DecisionVector,
    EffectiveTimeVector,
    IdempotencyVector,
    arbitration_vectors,
    effective_time_vectors,
    idempotency_vectors,
    matrix_vectors,
)

# Wire messages and the inputs of the conformance vectors, by schema file name.
SCHEMA_TYPES: dict[str, Any] = {
    "EventBatch": EventBatch,
    "ProposedEvent": ProposedEvent,
    "TypedEvent": TypedEvent,
    "DecisionBatch": DecisionBatch,
    "EventDecision": EventDecision,
    "ChangesPage": ChangesPage,
    "RecordedEvent": RecordedEvent,
    "TimelineEntry": TimelineEntry,
    "WorkOrderPage": WorkOrderPage,
    "WorkOrderState": WorkOrderState,
    "Actor": Actor,
    "HeldReview": HeldReview,
    "Transition": Transition,
    "BlobUploadRequest": BlobUploadRequest,
    "BlobUploadStatus": BlobUploadStatus,
    "DecisionVector": DecisionVector,
    "IdempotencyVector": IdempotencyVector,
    "EffectiveTimeVector": EffectiveTimeVector,
}


class ExportError(Exception):
    """The target folder cannot hold the export."""


def encode_document(value: Any) -> bytes:
    """Encode one JSON document with sorted keys, two-space indentation and a trailing newline."""
    return msgspec.json.format(msgspec.json.encode(value, order="sorted"), indent=2) + b"\n"


def encode_vector_list(vectors: list[Any]) -> bytes:
    """Encode a JSON array with one vector per line, so a change in one vector shows as one changed line."""
    lines = [msgspec.json.encode(vector, order="sorted") for vector in vectors]
    return b"[\n" + b",\n".join(lines) + b"\n]\n"


def reason_table() -> list[dict[str, str]]:
    return [
        {"reason_code": code.value, "status": REASON_STATUS[code].value, "sentence": REASON_SENTENCES[code]}
        for code in ReasonCode
    ]


def protocol_document() -> dict[str, Any]:
    """Describe the protocol and schema versions, their headers, and the request-level signals."""
    return {
        "protocol_version": PROTOCOL_VERSION,
        "supported_protocol_versions": sorted(SUPPORTED_PROTOCOL_VERSIONS),
        "schema_version": SCHEMA_VERSION,
        "legacy_schema_version": LEGACY_SCHEMA_VERSION,
        "headers": {
            "protocol_version": PROTOCOL_HEADER,
            "sdk_version": SDK_HEADER,
            "cursor": CURSOR_HEADER,
            "log_epoch": EPOCH_HEADER,
        },
        "signals": [
            {"reason": signal.value, "http_status": SIGNAL_STATUS[signal], "sentence": SIGNAL_SENTENCES[signal]}
            for signal in SyncSignal
        ],
        # The 426 sentence above is for a client older than the server; this one is for a newer client.
        "newer_protocol_sentence": PROTOCOL_NEWER_SENTENCE,
    }


def contract_files() -> dict[str, bytes]:
    """Build every contract file in memory, keyed by its path relative to the export folder."""
    files: dict[str, bytes] = {}
    for name, schema_type in SCHEMA_TYPES.items():
        files[f"schemas/{name}.json"] = encode_document(msgspec.json.schema(schema_type))
    for event_type, payload_type in EVENT_PAYLOADS.items():
        files[f"schemas/payloads/{event_type}.json"] = encode_document(msgspec.json.schema(payload_type))
    # The same bytes as `GET /v1/schema/transitions` and `csdp transitions`, plus the newline.
    files["transitions.json"] = transition_table_json() + b"\n"
    files["reasons.json"] = encode_document(reason_table())
    files["protocol.json"] = encode_document(protocol_document())
    files["conformance/matrix.json"] = encode_vector_list(matrix_vectors())
    files["conformance/arbitration.json"] = encode_vector_list(arbitration_vectors())
    files["conformance/idempotency.json"] = encode_vector_list(idempotency_vectors())
    files["conformance/effective_time.json"] = encode_vector_list(effective_time_vectors())
    return files


def export_contract(target: Path) -> list[Path]:
    """Write every contract file under `target`, creating folders as needed, and return the paths written.

    Files already in `target` that the export does not produce are left alone.
    Raises ExportError when `target` is not a folder or cannot be written.
    """
    if target.exists() and not target.is_dir():
        raise ExportError(f"cannot export the contract into {target}: it is a file, not a folder. Pass a folder path")
    written = []
    try:
        for relative, content in contract_files().items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            written.append(path)
    except OSError as exc:
        raise ExportError(
            f"cannot export the contract into {target}: {exc.strerror or exc}"
            f" ({exc.filename or target}). Choose a folder you can write to"
        ) from exc
    return written
