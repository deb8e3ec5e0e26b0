"""The reset signal: a device whose cursor is past the log's last position must reset first.

A cursor past the last stored position means the store was restored from an
older copy, and the events the device based its state and proposals on are
gone. A pull with such a `since`, or a push whose CURSOR_HEADER carries such
a cursor, gets 409 `reset_required` before anything is read or decided, so
no proposal is rejected for a `base_version` the restored log never reached.
"""

from __future__ import annotations

import structlog
from litestar import Request

from shared_schema.protocol import CURSOR_HEADER, SIGNAL_SENTENCES, SyncSignal

from .context import store_of
from .errors import InvalidField, SignalError

log = structlog.get_logger("csdp.api")


class HeadCache:
    """The highest log position this process has seen, so a cursor costs a query only when it exceeds that.

    NOTE: the value only grows, so a store replaced under a running server is
    detected only after the server restarts.
    """

    def __init__(self) -> None:
        self.known = 0


def remember_position(request: Request, position: int) -> None:
    """Record a position known to exist in the log, such as one just written or served."""
    cache: HeadCache = request.app.state.head_cache
    if position > cache.known:
        cache.known = position


def push_cursor(request: Request) -> int | None:
    """Return the cursor header as a position, None when absent; raise 422 for a value that is not one."""
    raw = request.headers.get(CURSOR_HEADER)
    if raw is None:
        return None
    text = raw.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidField(
            f"the {CURSOR_HEADER} header must be the pull cursor, a whole number of 0 or more",
            field=f"header {CURSOR_HEADER}",
            value=raw[:50],
        )
    return int(text)


async def check_cursor(request: Request, position: int | None, subject: str, *, field: str) -> None:
    """Raise 409 `reset_required` when `position` is past the last stored position; 0 and None always pass."""
    if not position:
        return
    cache: HeadCache = request.app.state.head_cache
    if position <= cache.known:
        return
    head = await store_of(request).head_position()
    remember_position(request, head)
    if position <= head:
        return
    log.warning(
        "cursor_ahead_of_log",
        cursor=position,
        head=head,
        subject=subject,
        field=field,
        correlation_id=request.scope.get("state", {}).get("correlation_id"),
    )
    raise SignalError(
        SyncSignal.RESET_REQUIRED,
        SIGNAL_SENTENCES[SyncSignal.RESET_REQUIRED].format(cursor=position, head=head),
        field=field,
        value=str(position),
        head=str(head),
    )


async def check_push_cursor(request: Request, subject: str) -> None:
    """Raise 409 `reset_required` when the push's cursor header is past the last stored position."""
    await check_cursor(request, push_cursor(request), subject, field=f"header {CURSOR_HEADER}")
