"""Structured JSON logs and the per-request log record with its correlation id."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = b"x-correlation-id"
MAX_CORRELATION_ID_LENGTH = 200


def invalid_correlation_id(raw: bytes) -> str | None:
    """Explain why a client's X-Correlation-ID cannot be used as sent, or return None when it can.

    The id is echoed in a response header and searched for in the audit, so
    it must come back byte for byte: printable ASCII only, and not cut.
    """
    if len(raw) > MAX_CORRELATION_ID_LENGTH:
        return f"X-Correlation-ID is {len(raw)} bytes long; send at most {MAX_CORRELATION_ID_LENGTH}"
    if not all(0x21 <= byte <= 0x7E for byte in raw):
        return "X-Correlation-ID must contain only printable ASCII characters without spaces"
    return None


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", level=level)
    # httpx logs each request's full URL at INFO, password included; the server
    # logs its own fetches with the password hidden.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Loggers are cached, so they write through a stream that looks up sys.stdout at each write:
        # one cached while sys.stdout was swapped (by a test, or an app embedding the server) keeps working.
        logger_factory=structlog.PrintLoggerFactory(CurrentStream("stdout")),
        cache_logger_on_first_use=True,
    )


class CurrentStream:
    """A text stream that forwards to `sys.stdout` or `sys.stderr` as they are when it is written to."""

    def __init__(self, name: str) -> None:
        if name not in ("stdout", "stderr"):
            raise ValueError(f"expected stdout or stderr, got {name!r}")
        self._name = name

    def write(self, text: str) -> int:
        return getattr(sys, self._name).write(text)

    def flush(self) -> None:
        getattr(sys, self._name).flush()


def request_log_middleware(app: ASGIApp) -> ASGIApp:
    """Log one record per HTTP request and echo its correlation id.

    The id comes from the `X-Correlation-ID` request header or is generated,
    is stored in `scope["state"]` for handlers, and is sent back in the
    response header of the same name.
    """
    log = structlog.get_logger("csdp.http")

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers", []))
        raw = headers.get(CORRELATION_HEADER, b"").strip()
        problem = invalid_correlation_id(raw) if raw else None
        correlation_id = raw.decode("ascii") if raw and problem is None else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        app_state = scope["app"].state
        if problem is not None:
            log.info("correlation_id_rejected", path=scope.get("path"), correlation_id=correlation_id, error=problem)
            if scope.get("method") == "POST":
                _audit_bad_header(scope, headers, correlation_id, problem)
            try:
                await _send_bad_header(send, correlation_id, problem, raw)
            finally:
                # Logged and counted like any other request, so a client that sends bad ids shows up.
                _record_request(log, app_state, scope, 400, started, correlation_id)
            return
        status = 500

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (CORRELATION_HEADER, correlation_id.encode())]
            await send(message)

        tracing = getattr(app_state, "tracing", None)
        span_context = (
            tracing.request_span(scope.get("method", ""), scope.get("path", ""), _text_headers(headers), correlation_id)
            if tracing is not None
            else contextlib.nullcontext()
        )
        try:
            with span_context as span:
                await app(scope, receive, send_with_header)
                if span is not None:
                    _finish_span(span, scope, status)
        finally:
            _record_request(log, app_state, scope, status, started, correlation_id)

    return middleware


def _record_request(log: Any, app_state: Any, scope: Scope, status: int, started: float, correlation_id: str) -> None:
    """Write the `request` log record and count the request in the HTTP metrics."""
    seconds = time.perf_counter() - started
    subject = getattr(scope["state"].get("actor"), "subject", None)
    log.info(
        "request",
        method=scope.get("method"),
        path=scope.get("path"),
        status=status,
        latency_ms=round(seconds * 1000, 2),
        subject=subject,
        correlation_id=correlation_id,
    )
    metrics = getattr(app_state, "metrics", None)
    if metrics is not None:
        route = getattr(scope.get("route_handler"), "name", None)
        metrics.observe_request(route, scope.get("method", ""), status, seconds)


def _text_headers(headers: dict[bytes, bytes]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in headers.items()}


def _finish_span(span: Any, scope: Scope, status: int) -> None:
    """Name the span after the matched route and add the status and the caller's subject."""
    handler = scope.get("route_handler")
    route = getattr(handler, "paths", None)
    if route:
        template = sorted(route)[0]
        span.update_name(f"{scope.get('method', '')} {template}")
        span.set_attribute("http.route", template)
    span.set_attribute("http.response.status_code", status)
    subject = getattr(scope["state"].get("actor"), "subject", None)
    if subject is not None:
        span.set_attribute("enduser.id", subject)


def _audit_bad_header(scope: Scope, headers: dict[bytes, bytes], correlation_id: str, message: str) -> None:
    """Queue a command rejected for its X-Correlation-ID for the audit, as the API does for other rejected POSTs."""
    recorder = getattr(scope["app"].state, "denied_requests", None)
    if recorder is None:
        return
    from .security.audit import denied_request_from_headers

    authorization = headers.get(b"authorization", b"").decode("latin-1")
    device = headers.get(b"x-device-id", b"").decode("latin-1") or None
    recorder.record(
        denied_request_from_headers(
            method="POST",
            path=scope.get("path", "/"),
            authorization=authorization,
            device_id=device,
            correlation_id=correlation_id,
            status_code=400,
            reason="malformed_request",
            message=message,
        )
    )


async def _send_bad_header(send: Send, correlation_id: str, message: str, raw: bytes) -> None:
    """Send a 400 response before the application runs, in the error body shape of the API."""
    shown = raw[:MAX_CORRELATION_ID_LENGTH].decode("utf-8", errors="replace")
    body = json.dumps(
        {
            "error": "malformed_request",
            "message": message,
            "field": "X-Correlation-ID",
            "value": shown,
            "correlation_id": correlation_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (CORRELATION_HEADER, correlation_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
