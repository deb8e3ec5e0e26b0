"""Role-based access control: which roles may call which endpoint.

`ENDPOINT_ROLES` is the role x endpoint table of `docs/security.md`, keyed by
route name. `authorize` is the one guard every route passes through: it
verifies the token, checks the table and applies the rate limit. A route
missing from the table is denied, so a new endpoint is closed until it is
given a row. What an engineer may see inside an allowed endpoint (only the
orders assigned to them) is the engineer scope applied by each query. Which
event types a role may record is the role x event-type table of
`shared_schema.transitions`, enforced by `decide`.
"""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import WebSocketException
from litestar.handlers.base import BaseRouteHandler

from shared_schema import HUMAN_ROLES, Actor, Role

from ..api.errors import ApiError, Forbidden, RateLimited, ServiceUnavailable, Unauthenticated
from .audit import denied_request_from_headers
from .errors import AuthenticationError, AuthorizationError, KeysUnavailable

ALL_ROLES = frozenset(HUMAN_ROLES)
OFFICE_ROLES = frozenset({Role.DISPATCHER, Role.MANAGER, Role.ADMIN})

# Routes anyone may call without a token: probes, the published contract and
# the static files of the dispatcher board, which hold no data.
PUBLIC_ENDPOINTS = frozenset({"health", "ready", "schema.transitions", "board.page", "board.script", "board.style", "board.icon"})
# Litestar's own routes, which carry no data: the OpenAPI document under /schema
# and the automatic OPTIONS responses.
PUBLIC_PATH_PREFIX = "/schema"

ENDPOINT_ROLES: dict[str, frozenset[Role]] = {
    "events.post": ALL_ROLES,
    "work_orders.list": ALL_ROLES,
    "work_orders.get": ALL_ROLES,
    "work_orders.timeline": ALL_ROLES,
    "sync.changes": ALL_ROLES,
    "audit.list": frozenset({Role.MANAGER, Role.ADMIN}),
    "kpi.get": frozenset({Role.MANAGER, Role.ADMIN}),
    "engineers.board": OFFICE_ROLES,
    "catalog.post": frozenset({Role.MANAGER, Role.ADMIN}),
    "catalog.engineers": OFFICE_ROLES,
    "catalog.sites": OFFICE_ROLES,
    "catalog.assets": OFFICE_ROLES,
    "catalog.contracts": OFFICE_ROLES,
    "catalog.asset_configuration": OFFICE_ROLES,
    "work_orders.asset_configuration": ALL_ROLES,
    "reviews.list": OFFICE_ROLES,
    "sla.get": ALL_ROLES,
    "sla.at_risk": OFFICE_ROLES,
    "blobs.create": ALL_ROLES,
    "blobs.upload_status": ALL_ROLES,
    "blobs.upload_chunk": ALL_ROLES,
    # Engineers download only blobs they uploaded or that their orders reference (server/api/blobs.py).
    "blobs.get": ALL_ROLES,
    "blobs.head": ALL_ROLES,
    "live.stream": ALL_ROLES,
    "live.stream_ws": ALL_ROLES,
    # Operations figures; a scraper may use CSDP_METRICS_TOKEN instead of an admin token.
    "metrics": frozenset({Role.ADMIN}),
}

# Routes that also take the token from the `access_token` query parameter,
# because a browser's EventSource and WebSocket cannot send an Authorization
# header. The header wins when both are given.
QUERY_TOKEN_ENDPOINTS = frozenset({"live.stream", "live.stream_ws"})

# Routes that also accept the static scrape token of CSDP_METRICS_TOKEN.
SCRAPE_TOKEN_ENDPOINTS = frozenset({"metrics"})

# Routes whose calls count against the subject's rate limit.
RATE_LIMITED_ENDPOINTS = frozenset({"events.post"})


def is_scrape_token(expected: str, authorization: str | None) -> bool:
    """Return whether the header is `Bearer <expected>`, compared in constant time; False when no token is set."""
    if not expected or not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())


def is_framework_route(method: str, path: str) -> bool:
    return method == "OPTIONS" or path == PUBLIC_PATH_PREFIX or path.startswith(PUBLIC_PATH_PREFIX + "/")


def credentials_of(connection: ASGIConnection, name: str | None) -> str | None:
    """Return the `Authorization` header, or for a stream route the `access_token` parameter as a bearer header."""
    header = connection.headers.get("authorization")
    if header is not None or name not in QUERY_TOKEN_ENDPOINTS:
        return header
    token = connection.query_params.get("access_token")
    return None if token is None else f"Bearer {token}"


async def authorize(connection: ASGIConnection, route_handler: BaseRouteHandler) -> None:
    """Verify the caller and check the route's row of the table; store the actor on the request."""
    if connection.scope["type"] != "websocket":
        await _authorize(connection, route_handler)
        return
    try:
        await _authorize(connection, route_handler)
    except ApiError as exc:
        # The HTTP error handlers, which audit denied requests, do not see a WebSocket handshake.
        reason = str(exc.extra.get("reason") or exc.error)
        connection.app.state.denied_requests.record(
            denied_request_from_headers(
                method="WEBSOCKET",
                path=connection.url.path,
                authorization=credentials_of(connection, route_handler.name),
                device_id=connection.headers.get("x-device-id"),
                correlation_id=None,
                status_code=exc.status_code,
                reason=reason,
                message=exc.message,
            )
        )
        # The handshake is rejected with close code 4000 + the HTTP status of the same error.
        raise WebSocketException(detail=exc.message[:120], code=4000 + exc.status_code) from None


async def _authorize(connection: ASGIConnection, route_handler: BaseRouteHandler) -> None:
    name = route_handler.name
    if name in PUBLIC_ENDPOINTS or is_framework_route(connection.scope.get("method", ""), connection.url.path):
        return
    app_state = connection.app.state
    state = connection.scope.setdefault("state", {})  # type: ignore[typeddict-item]
    if name in SCRAPE_TOKEN_ENDPOINTS and is_scrape_token(app_state.settings.metrics_token, connection.headers.get("authorization")):
        return
    try:
        actor: Actor = await app_state.verifier.verify(credentials_of(connection, name))
    except AuthenticationError as exc:
        message = exc.message
        if exc.reason == "missing_token" and name in QUERY_TOKEN_ENDPOINTS:
            message = (
                "missing token; send 'Authorization: Bearer <token>' or, where the client cannot set headers "
                "(EventSource, WebSocket), the access_token query parameter"
            )
        raise Unauthenticated(message, reason=exc.reason) from None
    except AuthorizationError as exc:
        raise Forbidden(exc.message, reason=exc.reason) from None
    except KeysUnavailable as exc:
        raise ServiceUnavailable(
            "the identity provider's signing keys cannot be fetched; retry the request", retry_after=5, detail=str(exc)
        ) from None
    state["actor"] = actor
    allowed = ENDPOINT_ROLES.get(name or "")
    if allowed is None:
        raise Forbidden(f"{connection.scope.get('method', '')} {connection.url.path} has no access rule", reason="no_access_rule")
    if actor.role not in allowed:
        roles = ", ".join(role.value for role in Role if role in allowed)
        raise Forbidden(
            f"role {actor.role.value} may not call {connection.scope.get('method', '')} {connection.url.path}; "
            f"allowed roles: {roles}",
            reason="role_not_permitted",
        )
    if name in RATE_LIMITED_ENDPOINTS:
        wait = app_state.rate_limiter.acquire(actor.subject)
        if wait is not None:
            raise RateLimited(
                f"too many requests from {actor.subject}; retry after {wait:.0f} seconds", retry_after=wait
            )
