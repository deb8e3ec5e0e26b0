"""Bad requests over loopback: each gets an exact 4xx body, and the server keeps serving.

One server serves the whole module, because no case here may change its state.
`test_state_unchanged_after_bad_input` checks that at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_helpers import Clients, created, event, post_batch
from conftest import LiveServer, start_server, stop_server

from server.config import Settings

ABSENT = object()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(var_dir=tmp_path_factory.mktemp("bad-input") / "var")
    uvicorn_server, thread, base_url = start_server(settings)
    try:
        yield LiveServer(base_url=base_url, settings=settings)
    finally:
        stop_server(uvicorn_server, thread)


@pytest.fixture(scope="module")
def clients(server: LiveServer) -> Iterator[Clients]:
    pool = Clients(server)
    post_batch(pool("dispatcher", "d-1"), [created("wo-1")])
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def dispatcher(clients: Clients) -> httpx.Client:
    return clients("dispatcher", "d-1")


def batch(*events: dict[str, Any], **top_level: Any) -> bytes:
    return json.dumps({"events": list(events), **top_level}).encode()


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw_event(payload_json: str, work_order_id: str = "wo-deep") -> bytes:
    """Encode an event by hand, so a payload can hold JSON that json.dumps would not produce."""
    envelope = event(work_order_id, "created", 0)
    del envelope["payload"]
    head = json.dumps(envelope)[:-1]
    return f'{{"events": [{head}, "payload": {payload_json}}}]}}'.encode()


def valid_event(**fields: Any) -> dict[str, Any]:
    """Build a `created` event that the server accepts, with `fields` replacing envelope fields."""
    return {**created("wo-new"), **fields}


def invalid_envelope(case_id: str, field: str, sent: Any, reported: Any = ABSENT) -> tuple:
    """Build a case where one envelope field of one event is `sent`, expected back as `reported`."""
    expected = sent if reported is ABSENT else reported
    return (case_id, batch(valid_event(**{field: sent})), 422, "invalid_field", f"$.events[0].{field}", expected)


def too_deep(case_id: str, body: bytes) -> tuple:
    """Build a case whose body nests deeper than the JSON decoder's recursion limit."""
    return (case_id, body, 400, "malformed_request", ABSENT, ABSENT)


# (case id, request body, status, error, field, value). ABSENT means the key must be missing.
BODY_CASES = [
    ("malformed json", b'{"events": [', 400, "malformed_request", ABSENT, ABSENT),
    ("trailing garbage", batch(valid_event()) + b" }", 400, "malformed_request", ABSENT, ABSENT),
    ("empty body", b"", 400, "malformed_request", ABSENT, ABSENT),
    ("invalid utf-8", b'{"events": ["\xff"]}', 400, "malformed_request", ABSENT, ABSENT),
    ("body is array", b"[]", 422, "invalid_field", "$", "<list of 0 items>"),
    ("body is string", b'"events"', 422, "invalid_field", "$", "events"),
    ("body is null", b"null", 422, "invalid_field", "$", None),
    ("events missing", b"{}", 422, "invalid_field", "$.events", ABSENT),
    ("events is number", b'{"events": 3}', 422, "invalid_field", "$.events", 3),
    ("events is object", b'{"events": {"a": 1}}', 422, "invalid_field", "$.events", "<dict of 1 items>"),
    ("events empty", b'{"events": []}', 400, "malformed_request", "$.events", []),
    ("event is string", b'{"events": ["x"]}', 422, "invalid_field", "$.events[0]", "x"),
    invalid_envelope("base_version text", "base_version", "three"),
    invalid_envelope("base_version negative", "base_version", -1),
    invalid_envelope("base_version float", "base_version", 1.5),
    invalid_envelope("base_version bool", "base_version", True),
    (
        "second event wrong type",
        batch(valid_event(), valid_event(device_id=7)),
        422,
        "invalid_field",
        "$.events[1].device_id",
        7,
    ),
    (
        "device_id missing",
        batch({key: value for key, value in valid_event().items() if key != "device_id"}),
        422,
        "invalid_field",
        "$.events[0].device_id",
        ABSENT,
    ),
    invalid_envelope("client_event_id invalid", "client_event_id", "nope"),
    invalid_envelope("causation_id invalid", "causation_id", "12"),
    invalid_envelope("occurred_at naive", "occurred_at", "2024-03-01T10:00:00"),
    invalid_envelope("occurred_at not a date", "occurred_at", "yesterday"),
    invalid_envelope("occurred_at before year 1 in UTC", "occurred_at", "0001-01-01T00:00:00+14:00"),
    invalid_envelope("occurred_at after year 9999 in UTC", "occurred_at", "9999-12-31T23:59:59-14:00"),
    ("event claims actor", batch(valid_event(actor="admin")), 403, "forbidden", "$.events[0].actor", "admin"),
    ("event claims role", batch(valid_event(actor_role="admin")), 403, "forbidden", "$.events[0].actor_role", "admin"),
    ("batch claims actor", batch(valid_event(), actor="admin"), 403, "forbidden", "$.actor", "admin"),
    ("batch claims roles", batch(valid_event(), roles=["admin"]), 403, "forbidden", "$.roles", "<list of 1 items>"),
    invalid_envelope("event claims event_id", "event_id", "x"),
    invalid_envelope("type empty", "type", ""),
    invalid_envelope("correlation_id empty", "correlation_id", ""),
    invalid_envelope("payload is list", "payload", [1], reported="<list of 1 items>"),
    invalid_envelope("work_order_id huge", "work_order_id", "w" * 1_000_000, reported="w" * 200 + "..."),
    invalid_envelope("device_id huge", "device_id", "d" * 101),
    (
        "number out of range",
        raw_event('{"title": "t", "site_id": "s", "x": 1e400}'),
        422,
        "invalid_field",
        "$.events[0].payload[...]",
        ABSENT,
    ),
    (
        "payload nested too deep",
        raw_event('{"title": "t", "site_id": "s", "x": ' + nested_lists(32) + "}"),
        422,
        "invalid_field",
        "$.events[0].payload",
        "<dict of 3 items>",
    ),
    too_deep("events nested 100000 deep", f'{{"events": [{nested_lists(100_000)}]}}'.encode()),
    too_deep("payload nested 5000 deep", raw_event(f'{{"x": {nested_lists(5_000)}}}')),
    too_deep("objects nested 100000 deep", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000),
]


@pytest.mark.parametrize(
    ("body", "status", "error", "field", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in BODY_CASES],
)
def test_post_events_bad_body(server, dispatcher, body, status, error, field, value):
    response = dispatcher.post("/v1/events", content=body, headers={"Content-Type": "application/json"})

    payload = response.json()
    assert response.status_code == status, payload
    assert payload["error"] == error
    assert payload["message"]
    assert payload["correlation_id"] == response.headers["x-correlation-id"]
    if field is ABSENT:
        assert "field" not in payload
    else:
        assert payload["field"] == field
    if value is ABSENT:
        assert "value" not in payload
    else:
        assert payload["value"] == value
    assert dispatcher.get("/health").status_code == 200


def test_actor_claim_names_token(dispatcher):
    response = dispatcher.post("/v1/events", content=batch(valid_event(actor="admin")))

    assert "bearer token" in response.json()["message"]


def test_missing_field_message_names_fix(dispatcher):
    body = batch({key: value for key, value in valid_event().items() if key != "occurred_at"})

    response = dispatcher.post("/v1/events", content=body)

    assert response.json()["message"] == "Object missing required field `occurred_at` - at `$.events[0]`; add the field"


def test_payload_at_depth_limit_decided(dispatcher):
    body = raw_event('{"title": "t", "site_id": "s", "x": ' + nested_lists(31) + "}", work_order_id="wo-depth")

    response = dispatcher.post("/v1/events", content=body)

    assert response.status_code == 200
    assert response.json()["decisions"][0]["reason_code"] == "invalid_payload"


def test_body_over_byte_limit(dispatcher):
    padding = " " * (10 * 1024 * 1024 + 1)

    response = dispatcher.post("/v1/events", content=b'{"events": []' + padding.encode() + b"}")

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert response.json()["limit"] == 10 * 1024 * 1024
    assert dispatcher.get("/health").status_code == 200


# (case id, path, status, field, value)
QUERY_CASES = [
    ("limit text", "/v1/work-orders?limit=abc", 422, "limit", "abc"),
    ("limit empty", "/v1/work-orders?limit=", 422, "limit", ""),
    ("limit zero", "/v1/work-orders?limit=0", 422, "limit", 0),
    ("limit above maximum", "/v1/work-orders?limit=1001", 422, "limit", 1001),
    ("limit huge", "/v1/work-orders?limit=" + "9" * 5000, 422, "limit", "9" * 5000),
    ("status bogus", "/v1/work-orders?status=bogus", 422, "status", "bogus"),
    ("status wrong case", "/v1/work-orders?status=NEW", 422, "status", "NEW"),
    ("priority bogus", "/v1/work-orders?priority=P9", 422, "priority", "P9"),
    ("cursor garbage", "/v1/work-orders?cursor=garbage", 422, "cursor", "garbage"),
    ("cursor outside alphabet", "/v1/work-orders?cursor=%25%25%25", 422, "cursor", "%%%"),
    ("cursor empty", "/v1/work-orders?cursor=", 422, "cursor", ""),
    ("cursor padded", "/v1/work-orders?cursor=d28tMQ==", 422, "cursor", "d28tMQ=="),
    ("since negative", "/v1/sync/changes?since=-1", 422, "since", -1),
    ("since text", "/v1/sync/changes?since=abc", 422, "since", "abc"),
    ("changes limit zero", "/v1/sync/changes?limit=0", 422, "limit", 0),
    ("changes limit above maximum", "/v1/sync/changes?limit=5001", 422, "limit", 5001),
    ("since above int64", "/v1/sync/changes?since=9223372036854775808", 422, "since", 9223372036854775808),
    ("list unknown parameter", "/v1/work-orders?after=wo-1", 422, "after", "wo-1"),
    ("list repeated status", "/v1/work-orders?status=new&status=assigned", 422, "status", ["new", "assigned"]),
    ("changes unknown parameter", "/v1/sync/changes?cursor=3", 422, "cursor", "3"),
    ("order unknown parameter", "/v1/work-orders/wo-1?verbose=1", 422, "verbose", "1"),
]


@pytest.mark.parametrize(
    ("path", "status", "field", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in QUERY_CASES],
)
def test_query_bad_parameter(dispatcher, path, status, field, value):
    response = dispatcher.get(path)

    payload = response.json()
    assert response.status_code == status, payload
    assert payload["error"] == "invalid_field"
    assert payload["field"] == field
    assert payload["value"] == value
    assert dispatcher.get("/health").status_code == 200


@pytest.mark.parametrize("path", ["/v1/work-orders/wo-404", "/v1/work-orders/wo-404/timeline"])
def test_unknown_work_order_404(dispatcher, path):
    response = dispatcher.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.json()["field"] == "work_order_id"
    assert response.json()["value"] == "wo-404"


def test_unknown_route_and_method(dispatcher):
    route = dispatcher.get("/v1/nothing-here")
    method = dispatcher.delete("/v1/work-orders/wo-1")

    assert route.status_code == 404
    assert route.json()["error"] == "not_found"
    assert method.status_code == 405
    assert method.json()["error"] == "http_error"


def test_state_unchanged_after_bad_input(dispatcher):
    events = dispatcher.get("/v1/sync/changes").json()["events"]
    orders = dispatcher.get("/v1/work-orders").json()["items"]

    assert [e["work_order_id"] for e in events] == ["wo-1"]
    assert [order["work_order_id"] for order in orders] == ["wo-1"]


def test_nul_in_envelope_field_422(dispatcher):
    body = {"events": [created("wo\u00001")]}

    response = dispatcher.post("/v1/events", json=body)

    assert response.status_code == 422
    assert response.json()["field"] == "$.events[0].work_order_id"
    assert response.json()["value"] == "wo\u00001"


def test_nul_in_payload_rejected(dispatcher):
    post_batch(dispatcher, [created("wo-nul")])
    proposal = event("wo-nul", "assigned", 1, {"engineer_id": "e\u000017"})

    decision = post_batch(dispatcher, [proposal])[0]

    assert decision["status"] == "REJECTED"
    assert decision["reason_code"] == "invalid_payload"
    assert "$.payload.engineer_id" in decision["message"]


@pytest.mark.parametrize(
    ("event_type", "payload", "field"),
    [
        ("created", {"title": "Leak", "site_id": "site-1", "priority": "P2", "description": "d\u0000"}, "description"),
        ("note_added", {"text": "called\u0000back"}, "text"),
    ],
    ids=["description", "note text"],
)
def test_nul_in_free_text_rejected(dispatcher, event_type, payload, field):
    """Free text takes no NUL either; it is never legitimate and PostgreSQL text cannot hold it."""
    work_order_id = "wo-nul-text" if event_type == "created" else "wo-nul"
    if event_type == "note_added" and not dispatcher.get("/v1/work-orders/wo-nul").is_success:
        post_batch(dispatcher, [created("wo-nul")])
    proposal = event(work_order_id, event_type, 0 if event_type == "created" else 1, payload)

    decision = post_batch(dispatcher, [proposal])[0]

    assert (decision["status"], decision["reason_code"]) == ("REJECTED", "invalid_payload")
    assert f"$.payload.{field}" in decision["message"]


def test_nul_in_path_not_found(dispatcher):
    response = dispatcher.get("/v1/work-orders/wo%001")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_nul_in_query_422(dispatcher):
    response = dispatcher.get("/v1/work-orders", params={"engineer_id": "e\u000017"})

    assert response.status_code == 422
    assert response.json()["field"] == "engineer_id"


# -- KPI instants outside the years 1 to 9999 in UTC -----------------------------
# The offset moves these valid ISO 8601 instants out of range only when they are
# converted to UTC. The conversion once raised OverflowError and returned 500.

KPI_INSTANT_CASES = [
    ("from before year 1", {"from": "0001-01-01T00:00:00+00:07", "to": "2026-01-01T00:00:00Z"}, "from"),
    ("to before year 1", {"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T00:00:00+00:07"}, "to"),
    ("to after year 9999", {"from": "2026-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-14:00"}, "to"),
]


@pytest.mark.parametrize(("window", "field"), [pytest.param(*case[1:], id=case[0]) for case in KPI_INSTANT_CASES])
def test_kpi_instant_out_of_range_422(clients, window, field):
    manager = clients("manager", "m-1")

    response = manager.get("/v1/kpi", params={**window, "group_by": "day"})

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["value"] == window[field]
    assert "outside the years 1 to 9999 in UTC" in response.json()["message"]
    assert manager.get("/health").status_code == 200


# -- malformed bodies on POST /v1/catalog ------------------------------------------


def site_command(**payload: Any) -> dict[str, Any]:
    return {"type": "site_registered", "entity_id": "site-bad", "payload": {"name": "S", "time_zone": "UTC", **payload}}


CATALOG_BODY_CASES = [
    ("invalid utf-8", b'{"commands": ["\xff"]}', 400, ABSENT),
    ("truncated json", b'{"commands": [', 400, ABSENT),
    ("commands is string", b'{"commands": "site_registered"}', 422, "$.commands"),
    ("command is number", b'{"commands": [7]}', 422, "$.commands[0]"),
    ("entity_id is list", json.dumps({"commands": [{**site_command(), "entity_id": ["x"]}]}).encode(), 422, "$.commands[0].entity_id"),
    ("name huge", json.dumps({"commands": [site_command(name="n" * 1_000_000)]}).encode(), 422, "$.commands[0].payload.name"),
    ("commands nested 100000 deep", b'{"commands": ' + nested_lists(100_000).encode() + b"}", 400, ABSENT),
    ("objects nested 100000 deep", b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, 400, ABSENT),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [pytest.param(*case[1:], id=case[0]) for case in CATALOG_BODY_CASES]
)
def test_catalog_bad_body(clients, body, status, field):
    manager = clients("manager", "m-1")

    response = manager.post("/v1/catalog", content=body, headers={"Content-Type": "application/json"})

    payload = response.json()
    assert response.status_code == status, payload
    assert payload["message"]
    if field is ABSENT:
        assert "field" not in payload
    else:
        assert payload["field"] == field
    assert manager.get("/v1/catalog/sites").json()["items"] == []


@pytest.mark.parametrize("path", ["/v1/events", "/v1/catalog"])
def test_ten_megabyte_string_rejected(clients, path):
    """A body of 10 MB (10**7 bytes, under the 10 MiB limit) that is one huge string: a clear 4xx, then normal service."""
    manager = clients("manager", "m-1")
    head = b'{"events": [{"work_order_id": "' if path == "/v1/events" else b'{"commands": [{"type": "'
    body = head + b"x" * (10_000_000 - len(head) - 4) + b'"}]}'
    assert len(body) == 10_000_000

    response = manager.post(path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text[:500]
    assert response.json()["field"].startswith("$.")
    assert len(response.text) < 2000
    assert manager.get("/health").status_code == 200
    assert manager.get("/v1/work-orders").status_code == 200
