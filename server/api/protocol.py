"""Guard that turns away clients speaking a protocol version this server does not support."""

from __future__ import annotations

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from shared_schema.protocol import PROTOCOL_HEADER, SDK_HEADER, SIGNAL_SENTENCES, SUPPORTED_PROTOCOL_VERSIONS, SyncSignal

from .errors import SignalError

log = structlog.get_logger("csdp.api")


async def check_protocol_version(connection: ASGIConnection, route_handler: BaseRouteHandler) -> None:
    """Raise 426 `unsupported_protocol_version` for a version header that is not a supported integer.

    A request without the header is served as protocol version 1, so tools
    such as curl and clients older than the header keep working.
    """
    raw = connection.headers.get(PROTOCOL_HEADER)
    if raw is None:
        return
    try:
        version = int(raw.strip())
    except ValueError:
        version = None
    if version in SUPPORTED_PROTOCOL_VERSIONS:
        return
    supported = ", ".join(str(number) for number in sorted(SUPPORTED_PROTOCOL_VERSIONS))
    log.info(
        "protocol_version_rejected",
        value=raw[:50],
        path=connection.url.path,
        sdk=connection.headers.get(SDK_HEADER, "")[:100],
        correlation_id=connection.scope.get("state", {}).get("correlation_id"),
    )
    raise SignalError(
        SyncSignal.UNSUPPORTED_PROTOCOL_VERSION,
        SIGNAL_SENTENCES[SyncSignal.UNSUPPORTED_PROTOCOL_VERSION].format(version=raw[:50], supported=supported),
        field=f"header {PROTOCOL_HEADER}",
        value=raw[:50],
        supported=sorted(SUPPORTED_PROTOCOL_VERSIONS),
    )
