"""Protocol and event schema versions on a real server: the version header, newer schemas, upcasting."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from api_helpers import Clients, all_changes, create_assigned, event, post_batch, timeline
from test_projections import PROJECTIONS, csdp, fetch_value

import server.api.protocol
import server.store.postgres
import server.store.sqlite
from server.upcasting import UPCASTERS, upcast_payload
from shared_schema import LEGACY_SCHEMA_VERSION, SCHEMA_VERSION, ProposedEvent, content_fingerprint
from shared_schema.protocol import PROTOCOL_HEADER


@pytest.fixture
def clients(live_server):
    pool = Clients(live_server)
    yield pool
    pool.close()


def in_progress_order(clients: Clients, work_order_id: str = "wo-1") -> int:
    """Create an order, assign it to e-17 and move it to in_progress; return its version."""
    create_assigned(clients("dispatcher", "d-1"), work_order_id, "e-17")
    engineer = clients("engineer", "e-17")
    flow = ("accepted", "travel_started", "arrived", "work_started")
    decisions = post_batch(engineer, [event(work_order_id, event_type, 2) for event_type in flow])
    assert [decision["status"] for decision in decisions] == ["ACCEPTED"] * 4
    return decisions[-1]["work_order_version"]


def checklist_v1(work_order_id: str, base_version: int, checked: object = True) -> dict:
    """A checklist event as a client written for schema version 1 sends it: no schema_version, a `checked` flag."""
    body = event(work_order_id, "checklist_updated", base_version, {"item": "guards refitted", "checked": checked})
    del body["schema_version"]
    return body


# -- protocol version header ------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "01"])
def test_protocol_header_supported(clients, value):
    engineer = clients.anonymous(headers={"Authorization": clients("engineer", "e-17").headers["Authorization"]})

    response = engineer.get("/v1/sync/changes", headers={PROTOCOL_HEADER: value})

    assert response.status_code == 200


@pytest.mark.parametrize("value", ["2", "02", "99999999999999999999"])
def test_protocol_header_newer_than_server(clients, value):
    engineer = clients("engineer", "e-17")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={PROTOCOL_HEADER: value}
    )

    assert response.status_code == 426
    body = response.json()
    assert body["error"] == "unsupported_protocol_version"
    assert body["reason"] == "unsupported_protocol_version"
    assert body["field"] == f"header {PROTOCOL_HEADER}"
    assert body["value"] == value
    assert body["supported"] == [1]
    assert "server needs an update" in body["message"]
    assert "Update the app" not in body["message"]


def test_protocol_header_older_than_server(clients, monkeypatch):
    monkeypatch.setattr(server.api.protocol, "SUPPORTED_PROTOCOL_VERSIONS", frozenset({2, 3}))
    engineer = clients("engineer", "e-17")

    response = engineer.get("/v1/sync/changes", headers={PROTOCOL_HEADER: "1"})

    assert response.status_code == 426
    body = response.json()
    assert body["supported"] == [2, 3]
    assert "Update the app" in body["message"]
    assert "server needs an update" not in body["message"]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "", "1.0", "1, 2", "+1", "1" * 4001])
def test_protocol_header_malformed(clients, value):
    engineer = clients("engineer", "e-17")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={PROTOCOL_HEADER: value}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_field"
    assert body["field"] == f"header {PROTOCOL_HEADER}"
    assert PROTOCOL_HEADER in body["message"]


@pytest.mark.parametrize(("values", "status"), [(["1", "2"], 422), (["1", "01"], 200), (["1", "1"], 200)])
def test_protocol_header_repeated(clients, values, status):
    engineer = clients("engineer", "e-17")

    response = engineer.get("/v1/sync/changes", headers=[(PROTOCOL_HEADER, value) for value in values])

    assert response.status_code == status
    if status == 422:
        assert response.json()["field"] == f"header {PROTOCOL_HEADER}"


def test_protocol_header_checked_before_token(clients):
    anonymous = clients.anonymous()

    response = anonymous.get("/v1/sync/changes", headers={PROTOCOL_HEADER: "9"})

    assert response.status_code == 426


# -- schema versions --------------------------------------------------------------


def test_future_schema_version_not_stored(clients, live_server):
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")
    future = event("wo-1", "note_added", version, {"text": "from a newer app"}, schema_version=SCHEMA_VERSION + 1)
    decisions_before = fetch_value(live_server.settings, "SELECT count(*) FROM decisions")

    response = engineer.post("/v1/events", json={"events": [event("wo-1", "note_added", version, {"text": "ok"}), future]})

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "unsupported_schema_version"
    assert body["field"] == "$.events[1].schema_version"
    assert body["value"] == SCHEMA_VERSION + 1
    assert body["supported"] == SCHEMA_VERSION
    # The whole request was turned away, so the same id is free for the current layout.
    assert fetch_value(live_server.settings, "SELECT count(*) FROM decisions") == decisions_before
    current = dict(future, schema_version=SCHEMA_VERSION)
    [decision] = post_batch(engineer, [current])
    assert decision["status"] == "ACCEPTED"
    assert decision["replay"] is False


@pytest.mark.parametrize("value", [0, -1, "2", None, 1.5])
def test_schema_version_invalid_value(clients, value):
    engineer = clients("engineer", "e-17")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2, schema_version=value)]}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_field"
    assert body["field"] == "$.events[0].schema_version"


def test_older_payload_posted_upcast(clients, live_server):
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")
    old = checklist_v1("wo-1", version)

    [decision] = post_batch(engineer, [old])

    assert decision["status"] == "ACCEPTED"
    [recorded] = [item for item in all_changes(engineer) if item["client_event_id"] == old["client_event_id"]]
    assert recorded["payload"] == {"item": "guards refitted", "status": "done"}
    assert recorded["schema_version"] == SCHEMA_VERSION
    [entry] = [item for item in timeline(engineer, "wo-1") if item["client_event_id"] == old["client_event_id"]]
    assert entry["payload"]["status"] == "done"
    # The old client retries the same body: it is a replay, not a reused key.
    [again] = post_batch(engineer, [old])
    assert again["replay"] is True
    assert again["status"] == "ACCEPTED"
    # A rejected proposal of an older client is in the timeline too, which a rebuild must reproduce.
    [rejected] = post_batch(engineer, [checklist_v1("wo-1", version + 5)])
    assert rejected["reason_code"] == "base_version_ahead"
    verified = csdp(live_server.settings, "projections", "verify", *PROJECTIONS)
    assert verified.exit_code == 0, verified.output


def test_older_payload_unchecked_maps_to_not_done(clients):
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")
    old = checklist_v1("wo-1", version, checked=False)

    post_batch(engineer, [old])

    [recorded] = [item for item in all_changes(engineer) if item["client_event_id"] == old["client_event_id"]]
    assert recorded["payload"]["status"] == "not_done"
    assert "checked" not in recorded["payload"]


@pytest.mark.parametrize(
    ("schema_version", "payload"),
    [
        (1, {"item": "guards refitted", "checked": "yes"}),
        (1, {"item": "guards refitted"}),
        (SCHEMA_VERSION, {"item": "guards refitted", "checked": True}),
    ],
)
def test_payload_wrong_for_its_version_rejected(clients, schema_version, payload):
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")

    [decision] = post_batch(
        engineer, [event("wo-1", "checklist_updated", version, payload, schema_version=schema_version)]
    )

    assert decision["status"] == "REJECTED"
    assert decision["reason_code"] == "invalid_payload"
    assert "$.payload" in decision["message"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"item": "belt", "status": "done"}, "unknown field `status` - at `$.payload`"),
        ({"item": "belt", "checked": "yes"}, "Expected `bool`, got `str` - at `$.payload.checked`"),
        ({"item": "belt", "checked": True, "status": "done"}, "unknown field `status`"),
    ],
)
def test_older_event_checked_in_its_layout(clients, payload, expected):
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")

    [decision] = post_batch(engineer, [event("wo-1", "checklist_updated", version, payload, schema_version=1)])

    assert decision["status"] == "REJECTED"
    assert decision["reason_code"] == "invalid_payload"
    assert expected in decision["message"]
    assert "schema version 1" in decision["message"]


def test_stored_older_event_read_and_replayed(clients, live_server, monkeypatch):
    """An event that a server of schema version 1 stored is upcast when the feed reads it and when projections replay it."""
    version = in_progress_order(clients)
    engineer = clients("engineer", "e-17")
    write_as_schema_1(monkeypatch)
    old = event(
        "wo-1", "checklist_updated", version, {"item": "guards refitted", "status": "done"}, schema_version=SCHEMA_VERSION
    )

    [decision] = post_batch(engineer, [old])
    monkeypatch.undo()

    assert decision["status"] == "ACCEPTED"
    stored = fetch_value(
        live_server.settings, "SELECT event FROM events WHERE client_event_id = $1", old["client_event_id"]
    )
    stored_document = msgspec.json.decode(stored)
    assert stored_document["schema_version"] == 1
    assert stored_document["payload"] == {"item": "guards refitted", "checked": True, "note": ""}
    [recorded] = [item for item in all_changes(engineer) if item["client_event_id"] == old["client_event_id"]]
    assert recorded["schema_version"] == SCHEMA_VERSION
    assert recorded["payload"]["status"] == "done"
    assert "checked" not in recorded["payload"]
    verified = csdp(live_server.settings, "projections", "verify", *PROJECTIONS)
    assert verified.exit_code == 0, verified.output


def write_as_schema_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the stores write checklist events in the schema 1 layout, as a server of that version did."""

    def downgrade(plan):
        for item in plan.events:
            recorded = item.event
            if recorded.type == "checklist_updated":
                payload = dict(recorded.payload)
                payload["checked"] = payload.pop("status") == "done"
                payload.setdefault("note", "")
                recorded.payload = payload
                recorded.schema_version = 1
        return plan

    for module in (server.store.sqlite, server.store.postgres):
        real = module.plan_batch
        monkeypatch.setattr(module, "plan_batch", lambda *args, _real=real, **kwargs: downgrade(_real(*args, **kwargs)))


# -- upcaster registry and fingerprints, without a server --------------------------


def test_upcasters_cover_older_versions_only():
    assert all(1 <= from_version < SCHEMA_VERSION for _, from_version in UPCASTERS)


def test_upcast_current_payload_unchanged():
    payload = {"item": "guards refitted", "status": "not_applicable"}

    assert upcast_payload("checklist_updated", payload, SCHEMA_VERSION) == payload
    assert upcast_payload("note_added", {"text": "x"}, 1) == {"text": "x"}


def test_fingerprint_of_legacy_event_unchanged():
    import datetime as dt

    event_v1 = ProposedEvent(
        client_event_id=uuid.UUID(int=7),
        work_order_id="wo-1",
        type="accepted",
        occurred_at=dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc),
        base_version=2,
        device_id="tablet-1",
    )

    # The fingerprint that a server before the schema_version field stored for this event.
    expected = (
        b'{"base_version":2,"causation_id":null,"client_event_id":"00000000-0000-0000-0000-000000000007",'
        b'"correlation_id":null,"device_id":"tablet-1","occurred_at":"2026-03-01T08:00:00Z","payload":{},'
        b'"type":"accepted","work_order_id":"wo-1"}'
    )
    assert event_v1.schema_version == LEGACY_SCHEMA_VERSION
    assert content_fingerprint(event_v1) == expected
    current = msgspec.structs.replace(event_v1, schema_version=SCHEMA_VERSION)
    assert content_fingerprint(current) != expected


def test_every_signal_has_status_and_sentence():
    from shared_schema.protocol import SIGNAL_SENTENCES, SIGNAL_STATUS, SyncSignal

    for signal in SyncSignal:
        assert 400 <= SIGNAL_STATUS[signal] < 500
        assert SIGNAL_SENTENCES[signal].endswith(".")
