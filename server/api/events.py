"""Command side: `POST /v1/events`."""

from __future__ import annotations

import datetime as dt
import time

import msgspec
import structlog
from litestar import Request, Response, post

from shared_schema import SCHEMA_VERSION, DecisionBatch, EventBatch, ProposedEvent
from shared_schema.protocol import SIGNAL_SENTENCES, SyncSignal

from .context import CurrentActor, settings_of, store_of
from .errors import (
    MISSING,
    Forbidden,
    InvalidField,
    MalformedRequest,
    PayloadTooLarge,
    SignalError,
    value_at,
    validation_error,
)
from .reset import check_push_cursor, epoch_headers, remember_position

log = structlog.get_logger("csdp.ingest")
_decode_batch = msgspec.json.Decoder(EventBatch).decode


# Payload schemas are flat, so this bound only stops documents that would
# strain the recursive JSON decoder and encoder when stored and served again.
MAX_PAYLOAD_DEPTH = 32


def parse_batch(body: bytes, max_events: int) -> EventBatch:
    """Decode a request body into a batch, or raise a 4xx naming the field and value at fault."""
    if not body:
        raise MalformedRequest('the request body is empty; send {"events": [...]}')
    try:
        batch = _decode_batch(body)
    except msgspec.ValidationError as exc:
        document = decode_document(body)
        _check_size(document.get("events") if isinstance(document, dict) else None, max_events)
        _reject_claimed_identity(document)
        raise validation_error(exc, document) from exc
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise _too_deep() from None
    _check_size(batch.events, max_events)
    if not batch.events:
        raise MalformedRequest("the batch has no events; send at least one", field="$.events", value=[])
    for index, event in enumerate(batch.events):
        _check_event(index, event)
    return batch


# Envelope fields that would name who acts. The actor and role come from the
# bearer token only, so a body that claims them is rejected as a whole (403)
# instead of having the claim silently dropped.
IDENTITY_FIELDS = ("actor", "actor_role", "role", "roles", "subject", "sub")


def _reject_claimed_identity(document: object) -> None:
    if not isinstance(document, dict):
        return
    places: list[tuple[str, object]] = [("$", document)]
    events = document.get("events")
    if isinstance(events, list):
        places.extend((f"$.events[{index}]", item) for index, item in enumerate(events))
    for path, item in places:
        if not isinstance(item, dict):
            continue
        for name in IDENTITY_FIELDS:
            if name in item:
                raise Forbidden(
                    f"the body claims {name}; the actor and role come from the bearer token only, "
                    "so remove the field",
                    field=f"{path}.{name}",
                    value=value_at(document, f"{path}.{name}"),
                    reason="identity_in_body",
                )


def decode_document(body: bytes) -> object:
    """Decode the body without a schema to find the value at fault.

    Returns MISSING when a number is out of range, and raises a 400 when the
    body is not JSON or is nested too deeply to decode.
    """
    try:
        return msgspec.json.decode(body)
    except msgspec.ValidationError:
        # A number outside the range of int64 and float, such as 1e400. The
        # schema error still names the field, but there is no value to show.
        return MISSING
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> MalformedRequest:
    return MalformedRequest(
        f"the request body is nested too deeply to decode; keep payloads within {MAX_PAYLOAD_DEPTH} levels"
    )


def _check_event(index: int, event: ProposedEvent) -> None:
    if event.schema_version > SCHEMA_VERSION:
        # A decision would be durable under this client_event_id, so the whole
        # request is turned away unstored and the client can send it again later.
        raise SignalError(
            SyncSignal.UNSUPPORTED_SCHEMA_VERSION,
            SIGNAL_SENTENCES[SyncSignal.UNSUPPORTED_SCHEMA_VERSION].format(
                version=event.schema_version, supported=SCHEMA_VERSION
            ),
            field=f"$.events[{index}].schema_version",
            value=event.schema_version,
            supported=SCHEMA_VERSION,
        )
    try:
        event.occurred_at.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidField(
            "occurred_at falls outside the years 1 to 9999 once converted to UTC, so it cannot be stored",
            field=f"$.events[{index}].occurred_at",
            value=event.occurred_at.isoformat(),
        ) from None
    if _depth(event.payload) > MAX_PAYLOAD_DEPTH:
        raise InvalidField(
            f"the payload nests objects or arrays more than {MAX_PAYLOAD_DEPTH} levels deep",
            field=f"$.events[{index}].payload",
            value=f"<dict of {len(event.payload)} items>",
            limit=MAX_PAYLOAD_DEPTH,
        )


def _depth(value: object) -> int:
    """Count the levels of nested objects and arrays, without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in children)
    return deepest


def _check_size(events: object, max_events: int) -> None:
    if isinstance(events, list) and len(events) > max_events:
        raise PayloadTooLarge(
            f"the batch has {len(events)} events, more than the limit of {max_events}; split it into smaller batches",
            field="$.events",
            limit=max_events,
            value=len(events),
        )


@post("/v1/events", status_code=200, name="events.post")
async def post_events(request: Request, actor: CurrentActor) -> Response[DecisionBatch]:
    """Decide a batch of proposed events; one decision per event, in batch order."""
    settings = settings_of(request)
    started = time.perf_counter()
    batch = parse_batch(await request.body(), settings.max_batch_events)
    await check_push_cursor(request, actor.subject)

    correlation_id = request.scope["state"].get("correlation_id")
    events = [
        event if event.correlation_id is not None else msgspec.structs.replace(event, correlation_id=correlation_id)
        for event in batch.events
    ]
    state = request.app.state
    with state.tracing.span("csdp.ingest_batch", **{"csdp.correlation_id": correlation_id or "", "csdp.events": len(events)}):
        decisions = await store_of(request).append_batch(
            actor,
            events,
            dt.datetime.now(dt.timezone.utc),
            dt.timedelta(seconds=settings.clock_skew_tolerance_seconds),
        )

    positions = [decision.global_position for decision in decisions if decision.global_position is not None]
    if positions:
        remember_position(request, max(positions))
        request.app.state.live_hub.announce(max(positions))

    summary: dict[str, int] = {}
    for decision in decisions:
        key = f"{decision.status.value}:{decision.reason_code.value}" + (":replay" if decision.replay else "")
        summary[key] = summary.get(key, 0) + 1
    seconds = time.perf_counter() - started
    state.metrics.observe_batch(decisions, seconds)
    log.info(
        "batch_decided",
        correlation_id=correlation_id,
        subject=actor.subject,
        device_ids=sorted({event.device_id for event in events}),
        events=len(decisions),
        decisions=summary,
        latency_ms=round(seconds * 1000, 2),
    )
    return Response(DecisionBatch(decisions=decisions), headers=await epoch_headers(request))
