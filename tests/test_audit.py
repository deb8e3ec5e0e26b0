"""The audit trail: every decision and every denied request, read through `GET /v1/audit`."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from api_helpers import Clients, assigned, create_assigned, created, event, post_batch
from conftest import LiveServer

from server.config import Settings
from server.store import create_store
from server.store.audit import DeniedRequest


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


def crafted_cursor(value: Any) -> str:
    """Encode a value as this server encodes its cursors, for cursors a client made up."""
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Cursors in the right encoding whose content this server never makes.
CRAFTED_CURSORS = [
    ["2026-12-04T22:00:00+00:00", "decision", 2**70],
    ["2026-12-04T22:00:00+00:00", "decision", -1],
    ["2026-12-04T22:00:00+00:00", "decision", True],
    ["0001-01-01T00:00:00+05:00", "decision", 1],
    ["9999-12-31T23:00:00-05:00", "decision", 1],
    ["2026-12-04T22:00:00", "decision", 1],
    "[" * 5000 + "]" * 5000,
]


def audit(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_entries(client: httpx.Client, count: int, **params: Any) -> list[dict[str, Any]]:
    """Poll until `count` entries match, because denied requests are written in the background."""
    deadline = time.monotonic() + 10
    while True:
        items = audit(client, **params)["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_denied_request_listed_with_reason(api):
    manager = api("manager", "m-1")
    stranger = api.anonymous(
        headers={"Authorization": "Bearer not-a-jwt", "X-Correlation-ID": "corr-401", "X-Device-ID": "tablet-9"}
    )

    response = stranger.get("/v1/work-orders")
    items = wait_for_entries(manager, 1, outcome="DENIED")

    assert response.status_code == 401
    assert len(items) == 1
    entry = items[0]
    assert entry["kind"] == "denied_request"
    assert entry["outcome"] == "DENIED"
    assert entry["reason"] == "malformed_token"
    assert entry["correlation_id"] == "corr-401"
    assert entry["device_id"] == "tablet-9"
    assert entry["status_code"] == 401
    assert (entry["method"], entry["path"]) == ("GET", "/v1/work-orders")
    assert entry["subject"] is None
    assert entry["subject_verified"] is False
    assert entry["message"] == response.json()["message"]


def test_rbac_denial_names_subject_and_role(api):
    manager = api("manager", "m-1")
    engineer = api.anonymous(
        headers={"Authorization": f"Bearer {api.live.token('engineer', 'e-17')}", "X-Correlation-ID": "corr-403"}
    )

    response = engineer.get("/v1/audit")
    items = wait_for_entries(manager, 1, correlation_id="corr-403")

    assert response.status_code == 403
    assert [(item["subject"], item["role"], item["subject_verified"]) for item in items] == [("e-17", "engineer", True)]
    assert items[0]["reason"] == "role_not_permitted"
    assert items[0]["status_code"] == 403


def test_claimed_subject_of_bad_token_kept_unverified(api, tmp_path):
    from server.security import mint_dev_token
    from shared_schema import Role

    foreign = mint_dev_token(Settings(var_dir=tmp_path / "other"), subject="intruder", role=Role.ADMIN)
    manager = api("manager", "m-1")

    api.anonymous(headers={"Authorization": f"Bearer {foreign}"}).get("/v1/sync/changes")
    items = wait_for_entries(manager, 1, outcome="DENIED")

    assert [(item["subject"], item["subject_verified"], item["reason"]) for item in items] == [
        ("intruder", False, "bad_signature")
    ]


def test_decisions_listed_with_actor_device_and_reason(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    manager = api("manager", "m-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(engineer, [event("wo-1", "accepted", 2, device_id="tablet-17")])
    post_batch(engineer, [event("wo-1", "closed", 3, device_id="tablet-17")])

    items = audit(manager, subject="e-17")["items"]

    assert [(item["event_type"], item["outcome"], item["reason"]) for item in items] == [
        ("accepted", "ACCEPTED", "applied"),
        ("closed", "REJECTED", "role_not_allowed"),
    ]
    assert {(item["kind"], item["role"], item["device_id"], item["work_order_id"]) for item in items} == {
        ("decision", "engineer", "tablet-17", "wo-1")
    }
    assert items[1]["message"] == "Role engineer may not record event closed while the order is accepted."
    assert all(item["subject_verified"] for item in items)


def test_needs_review_decision_listed(api):
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    manager = api("manager", "m-1")
    create_assigned(dispatcher, "wo-1", "e-17")
    post_batch(engineer, [event("wo-1", "accepted", 2)])
    post_batch(dispatcher, [event("wo-1", "reassigned", 3, {"engineer_id": "e-21", "reason": "closer"})])
    post_batch(engineer, [event("wo-1", "travel_started", 3, correlation_id="corr-offline")])

    items = audit(manager, outcome="NEEDS_REVIEW")["items"]

    assert [(item["subject"], item["event_type"], item["reason"]) for item in items] == [
        ("e-17", "travel_started", "work_on_reassigned_order")
    ]
    assert items[0]["correlation_id"] == "corr-offline"


def test_identity_claimed_in_body_is_audited(api):
    dispatcher = api("dispatcher", "d-1")
    manager = api("manager", "m-1")

    response = dispatcher.post("/v1/events", json={"events": [created("wo-1") | {"actor": "m-1"}]})
    items = wait_for_entries(manager, 1, outcome="DENIED")

    assert response.status_code == 403
    assert [(item["subject"], item["reason"], item["method"]) for item in items] == [("d-1", "identity_in_body", "POST")]
    assert audit(manager, outcome="ACCEPTED")["items"] == []


def test_pages_cover_both_kinds_in_order(api):
    dispatcher = api("dispatcher", "d-1")
    manager = api("manager", "m-1")
    stranger = api.anonymous(headers={"Authorization": "Bearer x.y.z"})
    for number in range(4):
        post_batch(dispatcher, [created(f"wo-{number}"), assigned(f"wo-{number}", "e-17", 1)])
        stranger.get("/v1/work-orders")
    wait_for_entries(manager, 4, outcome="DENIED")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = audit(manager, limit=3, **({"cursor": cursor} if cursor else {}))
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 12
    assert [item["at"] for item in seen] == sorted(item["at"] for item in seen)
    assert sum(item["kind"] == "denied_request" for item in seen) == 4
    assert len({(item["kind"], item["at"], item.get("client_event_id")) for item in seen}) == 12


def test_time_and_id_filters(api):
    dispatcher = api("dispatcher", "d-1")
    manager = api("manager", "m-1")
    post_batch(dispatcher, [created("wo-1")])
    middle = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    post_batch(dispatcher, [created("wo-2", priority="P1")])

    before = audit(manager, to=middle.isoformat())["items"]
    after = audit(manager, **{"from": middle.isoformat()})["items"]
    by_order = audit(manager, work_order_id="wo-2")["items"]
    by_reason = audit(manager, reason="applied", subject="d-1", device_id="tablet-1")["items"]

    assert [item["work_order_id"] for item in before] == ["wo-1"]
    assert [item["work_order_id"] for item in after] == ["wo-2"]
    assert [item["work_order_id"] for item in by_order] == ["wo-2"]
    assert [item["work_order_id"] for item in by_reason] == ["wo-1", "wo-2"]


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        ({"outcome": "MAYBE"}, "outcome", "MAYBE"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor", "bm90LWEtY3Vyc29y"),
        ({"cursor": "!!"}, "cursor", "!!"),
        ({"from": "yesterday"}, "from", "yesterday"),
        ({"to": "2026-12-04T08:00:00"}, "to", "2026-12-04T08:00:00"),
        ({"limit": "0"}, "limit", 0),
        ({"limit": "1001"}, "limit", 1001),
        ({"actor": "m-1"}, "actor", "m-1"),
        *[({"cursor": crafted_cursor(value)}, "cursor", crafted_cursor(value)) for value in CRAFTED_CURSORS],
    ],
    ids=[
        "unknown outcome",
        "foreign cursor",
        "cursor not base64",
        "from not a date",
        "to without offset",
        "limit zero",
        "limit too large",
        "unknown filter",
        "cursor id beyond int64",
        "cursor id negative",
        "cursor id true",
        "cursor before year 1 in UTC",
        "cursor after year 9999 in UTC",
        "cursor time without offset",
        "cursor deeply nested",
    ],
)
def test_bad_audit_query_422(api, params, field, value):
    response = api("admin", "a-1").get("/v1/audit", params=params)

    assert response.status_code == 422
    assert response.json()["field"] == field
    assert response.json()["value"] == value


@pytest.mark.parametrize("role", ["engineer", "dispatcher"])
def test_audit_closed_to_field_and_dispatch(api, role):
    response = api(role, f"{role}-1").get("/v1/audit")

    assert response.status_code == 403
    assert response.json()["reason"] == "role_not_permitted"


def test_denied_requests_append_only(settings):
    denied = DeniedRequest(
        denied_at=dt.datetime.now(dt.timezone.utc),
        subject="x",
        subject_verified=False,
        role=None,
        device_id=None,
        correlation_id="c-1",
        method="GET",
        path="/v1/work-orders",
        status_code=401,
        reason="malformed_token",
        message="invalid token",
    )

    async def write_then_tamper() -> None:
        store = create_store(settings)
        await store.open(migrate=True)
        await store.record_denied_requests([denied])
        await store.close()
        if settings.store_kind == "sqlite":
            with sqlite3.connect(settings.sqlite_path) as connection:
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    connection.execute("UPDATE denied_requests SET reason = 'none'")
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    connection.execute("DELETE FROM denied_requests")
            connection.close()
        else:
            base, _, query = settings.database_url.partition("?search_path=")
            connection = await asyncpg.connect(base, server_settings={"search_path": query})
            try:
                for statement in ("UPDATE denied_requests SET reason = 'none'", "DELETE FROM denied_requests", "TRUNCATE denied_requests"):
                    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                        await connection.execute(statement)
            finally:
                await connection.close()

    asyncio.run(write_then_tamper())


def test_flood_of_bad_tokens_batched(api):
    manager = api("manager", "m-1")
    stranger = api.anonymous(headers={"Authorization": "Bearer x.y.z"})

    statuses = {stranger.get("/v1/work-orders").status_code for _ in range(60)}
    items = wait_for_entries(manager, 60, outcome="DENIED", limit=1000)

    assert statuses == {401}
    assert len(items) == 60


def test_correlation_id_kept_byte_for_byte(api):
    manager = api("manager", "m-1")
    sent = "tablet-7:sync-2026-12-04T08:00:00Z#42"

    response = manager.get("/v1/work-orders", headers={"X-Correlation-ID": sent})
    stranger = api.anonymous(headers={"Authorization": "Bearer x.y.z", "X-Correlation-ID": sent})
    stranger.get("/v1/work-orders")
    items = wait_for_entries(manager, 1, correlation_id=sent)

    assert response.headers["x-correlation-id"] == sent
    assert [item["correlation_id"] for item in items] == [sent]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("corr-\u00e9-1".encode(), "printable ASCII"),
        (b"two words", "printable ASCII"),
        (b"c" * 201, "201 bytes long; send at most 200"),
    ],
    ids=["non-ASCII", "space", "too long"],
)
def test_unusable_correlation_id_400(api, header, message):
    client = api("dispatcher", "d-1")

    response = client.get("/v1/work-orders", headers={"X-Correlation-ID": header})

    assert response.status_code == 400
    assert response.json()["field"] == "X-Correlation-ID"
    assert message in response.json()["message"]
    assert response.headers["x-correlation-id"] == response.json()["correlation_id"]


def test_command_with_bad_correlation_id_audited(api):
    dispatcher = api("dispatcher", "d-1")
    manager = api("manager", "m-1")

    response = dispatcher.post("/v1/events", json={"events": [created("wo-1")]}, headers={"X-Correlation-ID": "bad id"})
    items = wait_for_entries(manager, 1, outcome="DENIED")

    assert response.status_code == 400
    assert [(item["subject"], item["subject_verified"], item["status_code"], item["reason"]) for item in items] == [
        ("d-1", False, 400, "malformed_request")
    ]
    assert items[0]["correlation_id"] == response.json()["correlation_id"]
