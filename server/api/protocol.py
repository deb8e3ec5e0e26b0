"""Guard that turns away clients speaking a protocol version this server does not support."""

from __future__ import annotations

import re

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from shared_schema.protocol import (
    PROTOCOL_HEADER,
    PROTOCOL_NEWER_SENTENCE,
    SDK_HEADER,
    SIGNAL_SENTENCES,
    SUPPORTED_PROTOCOL_VERSIONS,
    SyncSignal,
)

from .errors import InvalidField, SignalError

log = structlog.get_logger("csdp.api")


async def check_protocol_version(connection: ASGIConnection, route_handler: BaseRouteHandler) -> None:
    """Raise 426 `unsupported_protocol_version` for a version this server does not speak.

    A request without the header is served as protocol version 1, so tools
    such as curl and clients older than the header keep working. A value
    that is not a whole number of 1 or more, or two different values, get
    422 `invalid_field` naming the header.
    """
    values = connection.headers.getall(PROTOCOL_HEADER, [])
    if not values:
        return
    raw = values[0]
    version = _parse_version(raw)
    if version is None or any(_parse_version(other) != version for other in values[1:]):
        shown = ", ".join(value[:50] for value in values[:5])
        log.info(
            "protocol_version_invalid",
            value=shown,
            path=connection.url.path,
            correlation_id=connection.scope.get("state", {}).get("correlation_id"),
        )
        raise InvalidField(
            f"invalid {PROTOCOL_HEADER} header {shown!r}: send one whole number of 1 or more, such as 1",
            field=f"header {PROTOCOL_HEADER}",
            value=shown,
        )
    if version in SUPPORTED_PROTOCOL_VERSIONS:
        return
    supported = ", ".join(str(number) for number in sorted(SUPPORTED_PROTOCOL_VERSIONS))
    if version > max(SUPPORTED_PROTOCOL_VERSIONS):
        sentence = PROTOCOL_NEWER_SENTENCE
    else:
        sentence = SIGNAL_SENTENCES[SyncSignal.UNSUPPORTED_PROTOCOL_VERSION]
    log.info(
        "protocol_version_rejected",
        value=raw[:50],
        path=connection.url.path,
        sdk=connection.headers.get(SDK_HEADER, "")[:100],
        correlation_id=connection.scope.get("state", {}).get("correlation_id"),
    )
    raise SignalError(
        SyncSignal.UNSUPPORTED_PROTOCOL_VERSION,
        sentence.format(version=raw.strip()[:50], supported=supported),
        field=f"header {PROTOCOL_HEADER}",
        value=raw[:50],
        supported=sorted(SUPPORTED_PROTOCOL_VERSIONS),
    )


_VERSION_PATTERN = re.compile(r"[0-9]{1,4000}")


def _parse_version(raw: str) -> int | None:
    """Return the version in a header value, or None unless it is a whole number of 1 or more.

    int() raises for a string over sys.get_int_max_str_digits() digits (4300
    by default), so the pattern allows at most 4000 and longer values are invalid.
    """
    text = raw.strip()
    if not _VERSION_PATTERN.fullmatch(text):
        return None
    version = int(text)
    return version if version >= 1 else None
