"""Structured JSON logs and the per-request log record with its correlation id."""

from __future__ import annotations

import logging
import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = b"x-correlation-id"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", level=level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )


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
        headers = dict(scope.get("headers", []))
        raw = headers.get(CORRELATION_HEADER, b"").decode("latin-1").strip()
        correlation_id = raw[:200] if raw else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        started = time.perf_counter()
        status = 500

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (CORRELATION_HEADER, correlation_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_header)
        finally:
            log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                subject=getattr(scope["state"].get("actor"), "subject", None),
                correlation_id=correlation_id,
            )

    return middleware
