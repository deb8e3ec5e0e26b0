"""The reset signal on both stores: a pull or push cursor past the log's last position gets 409 reset_required."""

from __future__ import annotations

import pytest
from api_helpers import Clients, create_assigned, event, post_batch
from test_projections import fetch_value

from shared_schema.protocol import CURSOR_HEADER, EPOCH_HEADER


@pytest.fixture
def clients(live_server):
    pool = Clients(live_server)
    yield pool
    pool.close()


def test_pull_cursor_at_head_served(clients):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")

    response = dispatcher.get("/v1/sync/changes", params={"since": 2})

    assert response.status_code == 200
    assert response.json()["events"] == []
    assert response.json()["next_cursor"] == "2"


@pytest.mark.parametrize("since", [3, 10**12])
def test_pull_cursor_ahead_signals_reset(clients, since):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")

    response = dispatcher.get("/v1/sync/changes", params={"since": since})

    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "reset_required"
    assert body["reason"] == "reset_required"
    assert body["field"] == "since"
    assert body["value"] == str(since)
    assert body["head"] == "2"
    assert "pull again from 0" in body["message"]


def test_pull_cursor_ahead_of_empty_log(clients):
    engineer = clients("engineer", "e-17")

    response = engineer.get("/v1/sync/changes", params={"since": 1})

    assert response.status_code == 409
    assert response.json()["head"] == "0"


def test_pull_engineer_cursor_past_own_events(clients):
    """An engineer's cursor may pass positions they cannot see; only the global head decides a reset."""
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    create_assigned(dispatcher, "wo-2", "e-21")
    engineer = clients("engineer", "e-17")

    response = engineer.get("/v1/sync/changes", params={"since": 4})

    assert response.status_code == 200
    assert response.json()["events"] == []


def test_push_cursor_ahead_not_decided(clients, live_server):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    engineer = clients("engineer", "e-17")
    decisions_before = fetch_value(live_server.settings, "SELECT count(*) FROM decisions")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={CURSOR_HEADER: "9"}
    )

    assert response.status_code == 409
    body = response.json()
    assert body["reason"] == "reset_required"
    assert body["field"] == f"header {CURSOR_HEADER}"
    assert body["head"] == "2"
    assert fetch_value(live_server.settings, "SELECT count(*) FROM decisions") == decisions_before


@pytest.mark.parametrize("cursor", ["0", "2", "1"])
def test_push_cursor_within_log_decided(clients, cursor):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    engineer = clients("engineer", "e-17")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={CURSOR_HEADER: cursor}
    )

    assert response.status_code == 200
    assert response.json()["decisions"][0]["status"] == "ACCEPTED"


def test_push_cursor_ahead_after_growth_served(clients):
    """A cursor beyond the head this process saw earlier is checked again against the store."""
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    assert dispatcher.post("/v1/events", json={"events": [event("wo-1", "note_added", 2, {"text": "x"})]},
                           headers={CURSOR_HEADER: "5"}).status_code == 409
    create_assigned(dispatcher, "wo-2", "e-17")
    create_assigned(dispatcher, "wo-3", "e-17")

    decisions = post_batch(dispatcher, [event("wo-1", "priority_changed", 2, {"priority": "P1"})])
    response = dispatcher.post(
        "/v1/events", json={"events": [event("wo-2", "priority_changed", 2, {"priority": "P1"})]},
        headers={CURSOR_HEADER: "7"},
    )

    assert decisions[0]["status"] == "ACCEPTED"
    assert response.status_code == 200


@pytest.mark.parametrize("cursor", ["-1", "abc", "1.5", "1" * 20, ""])
def test_push_cursor_header_invalid(clients, cursor):
    engineer = clients("engineer", "e-17")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={CURSOR_HEADER: cursor}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_field"
    assert body["field"] == f"header {CURSOR_HEADER}"


# -- log epoch -----------------------------------------------------------------


def test_epoch_named_on_pull_and_push(clients, live_server):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")

    pulled = dispatcher.get("/v1/sync/changes", params={"since": 0})
    pushed = dispatcher.post("/v1/events", json={"events": [event("wo-1", "note_added", 2, {"text": "x"})]})

    epoch = fetch_value(live_server.settings, "SELECT epoch FROM log_identity")
    assert len(epoch) == 32
    assert pulled.headers[EPOCH_HEADER] == epoch
    assert pushed.headers[EPOCH_HEADER] == epoch


def test_pull_other_epoch_signals_reset(clients):
    """Another epoch means another copy of the log, even with a cursor the log has passed."""
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    epoch = dispatcher.get("/v1/sync/changes").headers[EPOCH_HEADER]

    response = dispatcher.get("/v1/sync/changes", params={"since": 1}, headers={EPOCH_HEADER: "0" * 32})

    assert response.status_code == 409
    body = response.json()
    assert body["reason"] == "reset_required"
    assert body["field"] == f"header {EPOCH_HEADER}"
    assert body["value"] == "0" * 32
    assert body["epoch"] == epoch
    # A store that was never restored shares no position with another log.
    assert body["head"] == "0"


def test_push_other_epoch_not_decided(clients, live_server):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    engineer = clients("engineer", "e-17")
    decisions_before = fetch_value(live_server.settings, "SELECT count(*) FROM decisions")

    response = engineer.post(
        "/v1/events", json={"events": [event("wo-1", "accepted", 2)]},
        headers={CURSOR_HEADER: "1", EPOCH_HEADER: "feedbeef"},
    )

    assert response.status_code == 409
    body = response.json()
    assert body["reason"] == "reset_required"
    assert body["field"] == f"header {EPOCH_HEADER}"
    assert body["value"] == "feedbeef"
    assert fetch_value(live_server.settings, "SELECT count(*) FROM decisions") == decisions_before


def test_same_or_missing_epoch_served(clients):
    dispatcher = clients("dispatcher", "d-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    epoch = dispatcher.get("/v1/sync/changes").headers[EPOCH_HEADER]
    engineer = clients("engineer", "e-17")

    same = engineer.post("/v1/events", json={"events": [event("wo-1", "accepted", 2)]}, headers={EPOCH_HEADER: epoch})
    missing = engineer.get("/v1/sync/changes", params={"since": 1})

    assert same.status_code == 200
    assert same.json()["decisions"][0]["status"] == "ACCEPTED"
    assert missing.status_code == 200


@pytest.mark.parametrize("epoch", ["", "a b", "x" * 65, "é" * 4, "ab-cd"])
def test_epoch_header_invalid(clients, epoch):
    dispatcher = clients("dispatcher", "d-1")

    response = dispatcher.get("/v1/sync/changes", headers={EPOCH_HEADER: epoch.encode()})

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_field"
    assert body["field"] == f"header {EPOCH_HEADER}"
