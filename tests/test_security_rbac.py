"""RBAC walked cell by cell: the role x endpoint table and the role x event-type table.

Both tables are data in the code and tables in `docs/security.md`. The tests
check every cell over HTTP and check that the document states what the code does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus
from api_helpers import assigned, created, event, post_batch
from catalog_helpers import asset, post_catalog, site, snapshot
from conftest import SHARED_SSL_CONTEXT, LiveServer, start_server, stop_server
from schema_helpers import valid_payload

from server.app import create_app
from server.config import Settings
from server.security.rbac import ENDPOINT_ROLES, PUBLIC_ENDPOINTS, is_framework_route
from shared_schema import HUMAN_ROLES, TRANSITIONS, Role, Transition, WorkOrderStatus
from shared_schema.transitions import ROLES_BY_EVENT_TYPE

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
ENGINEER = "e-1"
# A blob that engineer e-1 uploads when the module's server starts, so every role may read it.
BLOB = b"rbac photo"
BLOB_SHA256 = hashlib.sha256(BLOB).hexdigest()

# A request per protected endpoint that succeeds for a role the table allows.
ENDPOINT_CALLS = {
    "events.post": ("POST", "/v1/events"),
    "work_orders.list": ("GET", "/v1/work-orders"),
    "work_orders.get": ("GET", "/v1/work-orders/wo-1"),
    "work_orders.timeline": ("GET", "/v1/work-orders/wo-1/timeline"),
    "sync.changes": ("GET", "/v1/sync/changes"),
    "audit.list": ("GET", "/v1/audit"),
    "kpi.get": ("GET", "/v1/kpi?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z&group_by=engineer"),
    "engineers.board": ("GET", "/v1/engineers/board"),
    "catalog.post": ("POST", "/v1/catalog"),
    "catalog.engineers": ("GET", "/v1/catalog/engineers"),
    "catalog.sites": ("GET", "/v1/catalog/sites"),
    "catalog.assets": ("GET", "/v1/catalog/assets"),
    "catalog.contracts": ("GET", "/v1/catalog/contracts"),
    "catalog.asset_configuration": ("GET", "/v1/catalog/assets/cnc-101/configuration"),
    "work_orders.asset_configuration": ("GET", "/v1/work-orders/wo-1/asset-configuration"),
    "reviews.list": ("GET", "/v1/reviews"),
    "sla.get": ("GET", "/v1/work-orders/wo-1/sla"),
    "sla.at_risk": ("GET", "/v1/sla/at-risk"),
    "blobs.create": ("POST", "/v1/blobs"),
    "blobs.upload_status": ("GET", f"/v1/blobs/{BLOB_SHA256}/upload"),
    "blobs.upload_chunk": ("PATCH", f"/v1/blobs/{BLOB_SHA256}/upload"),
    "blobs.get": ("GET", f"/v1/blobs/{BLOB_SHA256}"),
    "blobs.head": ("HEAD", f"/v1/blobs/{BLOB_SHA256}"),
    "live.stream": ("GET", "/v1/stream"),
    "live.stream_ws": ("WEBSOCKET", "/v1/stream/ws"),
    "metrics": ("GET", "/metrics"),
}
# Streams stay open, so their cell is decided by the status line alone.
STREAM_ENDPOINTS = {"live.stream", "live.stream_ws"}
PUBLIC_CALLS = {
    "health": "/health",
    "ready": "/ready",
    "schema.transitions": "/v1/schema/transitions",
    "board.page": "/board",
    "board.script": "/board/board.js",
    "board.style": "/board/board.css",
    "board.icon": "/board/favicon.svg",
}


@pytest.fixture
def store_kind() -> str:
    """The tables are enforced above the store, so one store covers them."""
    return "sqlite"


@pytest.fixture(scope="module")
def rbac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(var_dir=tmp_path_factory.mktemp("rbac") / "var")
    server, thread, base_url = start_server(settings)
    live = LiveServer(base_url=base_url, settings=settings)
    with as_role(live, Role.ADMIN) as admin:
        post_catalog(admin, [site("site-stuttgart"), asset("cnc-101", "site-stuttgart"), snapshot("cnc-101", "2020-01-01T00:00:00Z")])
        post_batch(admin, [created("wo-1"), assigned("wo-1", ENGINEER)])
    with as_role(live, Role.ENGINEER) as engineer:
        declared = engineer.post("/v1/blobs", json={"sha256": BLOB_SHA256, "size_bytes": len(BLOB), "content_type": "image/jpeg"})
        assert declared.status_code == 200, declared.text
        headers = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        sent = engineer.patch(f"/v1/blobs/{BLOB_SHA256}/upload", content=BLOB, headers=headers)
        assert sent.json()["complete"] is True, sent.text
    yield live
    stop_server(server, thread)


def as_role(live: LiveServer, role: Role, subject: str | None = None) -> httpx.Client:
    subject = subject or (ENGINEER if role is Role.ENGINEER else f"{role.value}-1")
    token = live.token(role, subject)
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=SHARED_SSL_CONTEXT
    )


def test_every_route_has_an_access_rule(tmp_path):
    app = create_app(Settings(var_dir=tmp_path / "var"))

    names = {
        handler.name
        for route in app.routes
        # A WebSocket route has one handler and no HTTP methods.
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]  # type: ignore[attr-defined]
        for method in getattr(handler, "http_methods", {"WEBSOCKET"})
        if not is_framework_route(method, route.path)
    }

    assert names == set(ENDPOINT_ROLES) | PUBLIC_ENDPOINTS
    assert set(ENDPOINT_CALLS) == set(ENDPOINT_ROLES)
    assert set(PUBLIC_CALLS) == PUBLIC_ENDPOINTS


@pytest.mark.parametrize("name", sorted(PUBLIC_CALLS))
def test_public_endpoint_needs_no_token(rbac_server, name):
    response = httpx.get(rbac_server.base_url + PUBLIC_CALLS[name])

    assert response.status_code == 200


@pytest.mark.parametrize("role", HUMAN_ROLES, ids=[role.value for role in HUMAN_ROLES])
@pytest.mark.parametrize("name", sorted(ENDPOINT_ROLES))
def test_endpoint_cell(rbac_server, name, role):
    method, path = ENDPOINT_CALLS[name]
    body = None
    content = None
    headers = {}
    if name == "blobs.create":
        body = {"sha256": BLOB_SHA256, "size_bytes": len(BLOB), "content_type": "image/jpeg"}
    elif name == "blobs.upload_chunk":
        # The blob is stored already, so an empty chunk at its end changes nothing and returns 200.
        content = b""
        headers = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(len(BLOB))}
    elif name == "events.post":
        body = {"events": [event("wo-1", "note_added", 2, {"text": "called the customer"})]}
    elif name == "catalog.post":
        body = {"commands": [site(f"site-{role.value}")]}

    if name in STREAM_ENDPOINTS:
        status, reply = stream_status(rbac_server, role, method, path)
        if role in ENDPOINT_ROLES[name]:
            assert status == 200
        else:
            assert status == 403
            if method != "WEBSOCKET":
                assert reply["reason"] == "role_not_permitted"
        return
    with as_role(rbac_server, role) as http:
        if content is not None:
            response = http.request(method, path, content=content, headers=headers)
        else:
            response = http.request(method, path, json=body)

    if role in ENDPOINT_ROLES[name]:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert response.json()["reason"] == "role_not_permitted"
        assert f"role {role.value} may not call {method} {path.partition('?')[0]}" in response.json()["message"]


def stream_status(live: LiveServer, role: Role, method: str, path: str) -> tuple[int, dict]:
    """Open a stream as `role` and return the status and, for a refusal, the JSON body."""
    token = live.token(role, ENGINEER if role is Role.ENGINEER else f"{role.value}-1")
    if method == "WEBSOCKET":
        url = live.base_url.replace("http://", "ws://") + path
        try:
            with ws_client.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10):
                return 200, {}
        except InvalidStatus as exc:
            # A refused handshake carries no body, so there is no reason to compare.
            return exc.response.status_code, {}
    with httpx.stream(method, live.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, response.json()
        return 200, {}


def path_to(status: WorkOrderStatus | None) -> list[str]:
    """Event types an admin records to bring a new order into `status`, by the shortest path."""
    if status is None:
        return []
    paths: dict[WorkOrderStatus, list[str]] = {WorkOrderStatus.NEW: ["created"]}
    frontier = [WorkOrderStatus.NEW]
    while frontier:
        current = frontier.pop(0)
        for row in TRANSITIONS:
            if row.from_state is current and row.to_state is not None and row.to_state not in paths and Role.ADMIN in row.roles:
                paths[row.to_state] = [*paths[current], row.event_type]
                frontier.append(row.to_state)
    return paths[status]


ROWS = [row for row in TRANSITIONS]


@pytest.mark.parametrize("role", HUMAN_ROLES, ids=[role.value for role in HUMAN_ROLES])
@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{row.from_state.value if row.from_state else 'absent'}-{row.event_type}" for row in ROWS]
)
def test_event_type_cell(rbac_server, row: Transition, role: Role):
    """Every (state, event type) row, proposed by every role: accepted exactly when the row lists the role."""
    order = f"wo-{row.from_state.value if row.from_state else 'absent'}-{row.event_type}-{role.value}"
    setup = []
    for version, event_type in enumerate(path_to(row.from_state)):
        setup.append(event(order, event_type, version, valid_payload(event_type, ENGINEER) | _title(event_type)))
    with as_role(rbac_server, Role.ADMIN, subject=f"admin-{role.value}") as admin:
        if setup:
            assert {decision["status"] for decision in post_batch(admin, setup)} == {"ACCEPTED"}
    proposal = event(order, row.event_type, len(setup), valid_payload(row.event_type, "e-2") | _title(row.event_type))

    with as_role(rbac_server, role) as http:
        decision = post_batch(http, [proposal])[0]

    if role in row.roles and row.event_type == "review_resolved":
        # The role check passed, and the named event is not held on this order.
        # tests/test_reviews.py resolves real held events.
        assert (decision["status"], decision["reason_code"]) == ("REJECTED", "review_not_found")
    elif role in row.roles:
        assert (decision["status"], decision["reason_code"]) == ("ACCEPTED", "applied")
    else:
        assert (decision["status"], decision["reason_code"]) == ("REJECTED", "role_not_allowed")


def _title(event_type: str) -> dict[str, str]:
    return {"title": "Spindle alarm"} if event_type == "created" else {}


# -- the document matches the code ----------------------------------------------


def doc_table(heading: str) -> dict[str, set[Role]]:
    """Read the table under `heading` in docs/security.md: first column -> roles whose cell starts with "yes"."""
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table: dict[str, set[Role]] = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        key = re.search(r"`([^`]+)`", cells[0]).group(1)  # type: ignore[union-attr]
        table[key] = {Role(header[i]) for i in range(1, len(cells)) if cells[i].startswith("yes")}
    return table


def test_endpoint_table_in_docs_matches_code():
    documented = doc_table("Role x endpoint")

    assert documented == {name: set(roles) for name, roles in ENDPOINT_ROLES.items()}


def test_event_type_table_in_docs_matches_code():
    documented = doc_table("Role x event type")

    assert documented == {event_type: set(roles) for event_type, roles in ROLES_BY_EVENT_TYPE.items()}
