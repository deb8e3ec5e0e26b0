"""Live updates: `GET /v1/stream` (server-sent events) and `/v1/stream/ws` (WebSocket).

Both carry the messages of `server/live/messages.py` and resume by global
position. docs/live.md describes the protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jwt
import structlog
from litestar import Request, WebSocket, get, websocket
from litestar.connection import ASGIConnection
from litestar.exceptions import WebSocketDisconnect
from litestar.response import Stream

from shared_schema import EVENT_TYPES, Actor
from shared_schema.protocol import SIGNAL_SENTENCES, SyncSignal

from ..live.hub import Change, Disconnect, Heartbeat, LiveHub, StreamItem
from ..live.messages import StreamFilter, disconnect_message, heartbeat_message
from ..store.live_reads import last_position
from .context import MAX_INT64, CurrentActor, check_query_names, engineer_scope, int_query, store_of
from .errors import ApiError, Forbidden, InvalidField, SignalError
from .reset import check_epoch, epoch_headers, log_identity

log = structlog.get_logger("csdp.live")

STREAM_QUERY_NAMES = {"since", "work_order_id", "engineer_id", "kinds", "access_token"}
# How long a browser's EventSource waits before it reconnects, in milliseconds.
RECONNECT_DELAY_MS = 2000
# WebSocket close codes after a disconnect message. Errors close with 4000 + the HTTP status of the same error.
WS_CLOSE_GOING_AWAY = 1001
WS_CLOSE_NORMAL = 1000


def hub_of(connection: ASGIConnection) -> LiveHub:
    return connection.app.state.live_hub


async def stream_request(connection: ASGIConnection, actor: Actor) -> tuple[StreamFilter, int]:
    """Read the filter and the resume position of a stream request, or raise a 4xx naming the field.

    The `Last-Event-ID` header, which a browser's EventSource sends when it
    reconnects, takes precedence over the `since` query parameter.
    """
    check_query_names(connection, STREAM_QUERY_NAMES)  # type: ignore[arg-type]
    since = int_query(connection, "since", -1, minimum=0)  # type: ignore[arg-type]
    raw_last_id = connection.headers.get("last-event-id")
    if raw_last_id is not None:
        try:
            since = int(raw_last_id.strip())
        except ValueError:
            raise InvalidField(
                "header Last-Event-ID must be the id of a message of this stream, a whole number",
                field="Last-Event-ID",
                value=raw_last_id,
            ) from None
        if not 0 <= since <= MAX_INT64:
            raise InvalidField(
                f"header Last-Event-ID must be from 0 to {MAX_INT64}", field="Last-Event-ID", value=since
            )
    await check_epoch(connection, actor.subject)  # type: ignore[arg-type]
    head = await last_position(store_of(connection))  # type: ignore[arg-type]
    if since == -1:
        # Without a resume position the stream starts at the current end of the log.
        since = head
    elif since > head:
        # The same signal as a pull with this cursor: the log was restored from an older copy.
        epoch, _ = await log_identity(connection)  # type: ignore[arg-type]
        raise SignalError(
            SyncSignal.RESET_REQUIRED,
            SIGNAL_SENTENCES[SyncSignal.RESET_REQUIRED].format(cursor=since, head=head),
            field="Last-Event-ID" if raw_last_id is not None else "since",
            value=str(since),
            head=str(head),
            epoch=epoch,
        )

    scope = engineer_scope(actor)
    engineer_id = connection.query_params.get("engineer_id")
    if scope is not None and engineer_id is not None and engineer_id != scope:
        raise Forbidden(
            "engineers may follow only their own orders; leave engineer_id out or use your own id",
            field="engineer_id",
            value=engineer_id,
            reason="not_assigned",
        )
    work_order_id = _non_empty(connection, "work_order_id")
    if scope is not None and work_order_id is not None:
        await _check_order_assigned(connection, scope, work_order_id)
    return (
        StreamFilter(
            scope=scope,
            engineer_id=engineer_id,
            work_order_id=work_order_id,
            kinds=_kinds(connection),
        ),
        since,
    )


async def _check_order_assigned(connection: ASGIConnection, engineer_id: str, work_order_id: str) -> None:
    """Raise the 403 of GET /v1/work-orders/{id} unless the order is assigned to the engineer now.

    A missing order gets the same 403, so order ids cannot be probed. An order reassigned later
    while the stream is open is filtered by the stream's engineer scope instead.
    """
    # No stored id contains NUL, and PostgreSQL cannot even compare text with it.
    state = None if "\x00" in work_order_id else await store_of(connection).get_work_order(work_order_id)  # type: ignore[arg-type]
    if state is None or state.engineer_id != engineer_id:
        raise Forbidden(
            f"work order {work_order_id!r} is not assigned to engineer {engineer_id}",
            field="work_order_id",
            value=work_order_id,
            reason="not_assigned",
        )


def _non_empty(connection: ASGIConnection, name: str) -> str | None:
    value = connection.query_params.get(name)
    if value is not None and not value.strip():
        raise InvalidField(f"query parameter {name} is empty; give an id or leave it out", field=name, value=value)
    return value


def _kinds(connection: ASGIConnection) -> frozenset[str] | None:
    raw = connection.query_params.get("kinds")
    if raw is None:
        return None
    kinds = [part.strip() for part in raw.split(",")]
    unknown = [kind for kind in kinds if kind not in EVENT_TYPES]
    if unknown or not kinds:
        raise InvalidField(
            f"query parameter kinds must be a comma-separated list of event types; unknown: {', '.join(map(repr, unknown))}",
            field="kinds",
            value=raw,
        )
    return frozenset(kinds)


def token_expiry(connection: ASGIConnection) -> float | None:
    """Return the `exp` of the token that the guard verified, as a Unix time, or None without one."""
    header = connection.headers.get("authorization")
    token = header.partition(" ")[2].strip() if header else connection.query_params.get("access_token")
    if not token:
        return None
    try:
        # The guard has verified the signature and the claims already.
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) else None


@get("/v1/stream", name="live.stream")
async def get_stream(request: Request, actor: CurrentActor) -> Stream:
    """Stream accepted events as server-sent events, with the global position as message id."""
    stream_filter, since = await stream_request(request, actor)
    items = hub_of(request).subscribe(stream_filter, since, expires_at=token_expiry(request))
    log.info(
        "live_stream_opened",
        transport="sse",
        subject=actor.subject,
        since=since,
        correlation_id=request.scope["state"].get("correlation_id"),
    )
    return Stream(
        _sse_frames(items),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **await epoch_headers(request)},
    )


async def _sse_frames(items: AsyncIterator[StreamItem]) -> AsyncIterator[bytes]:
    """Format stream items as server-sent events.

    The frames are written here instead of through Litestar's
    ServerSentEvent, which parses every message again. The data is one line
    of JSON, so each message has exactly one `data` line.
    """
    yield f"retry: {RECONNECT_DELAY_MS}\n\n".encode()
    async for item in items:
        if isinstance(item, Change):
            yield f"id: {item.position}\nevent: change\ndata: {item.data}\n\n".encode()
        elif isinstance(item, Heartbeat):
            yield b": heartbeat\n\n"
        else:
            # No id, so the browser's Last-Event-ID stays at the last change it received.
            yield f"event: disconnect\ndata: {disconnect_message(item.reason, item.resume_from)}\n\n".encode()


@websocket("/v1/stream/ws", name="live.stream_ws")
async def stream_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """Send the same messages as `GET /v1/stream` over a WebSocket, resuming after `since`."""
    actor: Actor = socket.scope["state"]["actor"]  # type: ignore[typeddict-item]
    await socket.accept()
    try:
        stream_filter, since = await stream_request(socket, actor)
    except ApiError as exc:
        log.info("live_stream_rejected", transport="websocket", subject=actor.subject, status=exc.status_code, error=exc.message)
        await socket.send_text(json.dumps({"kind": "error", **exc.body()}, default=str))
        await socket.close(code=4000 + exc.status_code, reason=exc.message[:120])
        return
    log.info("live_stream_opened", transport="websocket", subject=actor.subject, since=since)
    items = hub_of(socket).subscribe(stream_filter, since, expires_at=token_expiry(socket))
    # The sender waits for changes and the watcher for the client's close, so a
    # closed socket leaves the hub at once instead of at the next failed send.
    sender = asyncio.create_task(_send_items(socket, items))
    watcher = asyncio.create_task(_wait_for_close(socket))
    try:
        done, _ = await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher in done:
            log.info("live_stream_closed_by_client", transport="websocket", subject=actor.subject)
    finally:
        for task in (sender, watcher):
            task.cancel()
        await asyncio.gather(sender, watcher, return_exceptions=True)
        await items.aclose()  # type: ignore[attr-defined]


async def _send_items(socket: WebSocket[Any, Any, Any], items: AsyncIterator[StreamItem]) -> None:
    try:
        async for item in items:
            if isinstance(item, Change):
                await socket.send_text(item.data)
            elif isinstance(item, Heartbeat):
                await socket.send_text(heartbeat_message(item.position))
            else:
                await _close_with(socket, item)
                return
    except WebSocketDisconnect:
        return


async def _wait_for_close(socket: WebSocket[Any, Any, Any]) -> None:
    """Read and ignore what the client sends until it closes the socket."""
    try:
        while True:
            await socket.receive_data("text")
    except WebSocketDisconnect:
        return


async def _close_with(socket: WebSocket[Any, Any, Any], item: Disconnect) -> None:
    await socket.send_text(disconnect_message(item.reason, item.resume_from))
    code = WS_CLOSE_GOING_AWAY if item.reason == "server_stopping" else WS_CLOSE_NORMAL
    await socket.close(code=code, reason=item.reason)


ROUTES = [get_stream, stream_socket]
