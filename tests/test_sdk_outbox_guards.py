"""Guards that keep one bad event from blocking the outbox: payload checks in record(), and 413 on push."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LiveServer, start_server, stop_server

from client_sdk import EventState, InvalidEvent, Rollback
from sdk_helpers import ORDER, Tablets, server_events, server_state
from shared_schema import WorkOrderStatus

# Large enough for a batch of a few small events, too small for one note of 6000 characters.
SMALL_BODY_LIMIT = 4000


@pytest.fixture
def small_body_server(settings) -> Iterator[LiveServer]:
    limited = dataclasses.replace(settings, max_body_bytes=SMALL_BODY_LIMIT)
    server, thread, base_url = start_server(limited, demo=True)
    try:
        yield LiveServer(base_url=base_url, settings=limited)
    finally:
        stop_server(server, thread)


@pytest.fixture
def small_body_tablets(small_body_server: LiveServer, tmp_path: Path) -> Iterator[Tablets]:
    factory = Tablets(small_body_server, tmp_path / "devices")
    yield factory
    factory.close_all()


# -- record() checks the payload ----------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "payload", "field", "detail"),
    [
        ("frobnicate", {}, "type", "unknown event type 'frobnicate'"),
        ("note_added", {"txt": "x"}, "$.payload", "unknown field `txt`"),
        ("note_added", {}, "$.payload", "missing required field `text`"),
        ("note_added", {"text": "y" * 10_001}, "$.payload.text", "length <= 10000"),
        ("note_added", {"text": 5}, "$.payload.text", "Expected `str`, got `int`"),
        ("hold_started", {"reason": "lunch"}, "$.payload.reason", "Invalid enum value 'lunch'"),
        ("time_logged", {"minutes": 0}, "$.payload.minutes", "Expected `int` >= 1"),
        ("checklist_updated", {"item": "belt", "checked": True}, "$.payload", "unknown field `checked`"),
    ],
    ids=["unknown-type", "unknown-field", "missing-field", "too-long", "wrong-type", "bad-enum", "out-of-range", "old-layout"],
)
def test_record_invalid_payload_raises(tablets, event_type, payload, field, detail):
    client = tablets.open()

    with pytest.raises(InvalidEvent) as raised:
        client.record(ORDER, event_type, payload)

    assert raised.value.field == field
    assert detail in str(raised.value)
    assert ORDER in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert client.outbox() == []
    assert client.sync().pushed == 0


def test_record_valid_payloads_stored(tablets):
    client = tablets.open()
    client.sync()

    client.record(ORDER, "accepted")
    client.record(ORDER, "note_added", {"text": "y" * 10_000})
    client.record(ORDER, "time_logged", {"minutes": 30})
    report = client.sync()

    assert report.accepted == 3
    assert client.pending_count() == 0


# -- 413 on push --------------------------------------------------------------------


def test_413_isolates_oversized_event(small_body_server, small_body_tablets):
    client = small_body_tablets.open(batch_size=10)
    client.sync()
    rollbacks: list[Rollback] = []
    client.on_rollback(rollbacks.append)
    accepted = client.record(ORDER, "accepted")
    big = client.record(ORDER, "note_added", {"text": "y" * 6000})
    later = [client.record(ORDER, event_type) for event_type in ("travel_started", "arrived")]

    report = client.sync()

    assert report.rejected_locally == 1
    assert report.accepted == 3
    assert client.event_state(big.event.client_event_id) is EventState.REJECTED_LOCALLY
    for entry in [accepted, *later]:
        assert client.event_state(entry.event.client_event_id) is EventState.CONFIRMED
    [rejected] = client.not_applied()
    assert rejected.local_rejection.reason == "payload_too_large"
    assert rejected.local_rejection.http_status == 413
    assert [rollback.reason_code for rollback in rollbacks] == ["payload_too_large"]
    assert rollbacks[0].client_event_id == big.event.client_event_id
    assert client.pending_count() == 0
    assert server_state(small_body_server, ORDER).status is WorkOrderStatus.ON_SITE
    assert big.event.client_event_id not in {event.client_event_id for event in server_events(small_body_server, ORDER)}
    # The outbox is free: the next sync sends nothing again.
    assert client.sync().pushed == 0


def test_413_alone_marks_event_rejected(small_body_server, small_body_tablets):
    client = small_body_tablets.open(batch_size=1)
    client.sync()
    big = client.record(ORDER, "note_added", {"text": "z" * 6000})
    accepted = client.record(ORDER, "accepted")

    report = client.sync()

    assert report.rejected_locally == 1
    assert report.accepted == 1
    assert client.event_state(big.event.client_event_id) is EventState.REJECTED_LOCALLY
    assert client.event_state(accepted.event.client_event_id) is EventState.CONFIRMED
    assert client.status().rejected_count == 1
