"""The reset signal on push: a device whose cursor is past the log's last position must reset first.

A device sends its pull cursor in CURSOR_HEADER with each push. When the
cursor is past the last stored position, the store was restored from an
older copy, and the events the device based its proposals on are gone. The
server then returns 409 `reset_required` before deciding anything, so no
proposal is rejected for a `base_version` the restored log never reached.
"""

from __future__ import annotations

import structlog
from litestar import Request

from shared_schema.protocol import CURSOR_HEADER, SIGNAL_SENTENCES, SyncSignal

from .context import store_of
from .errors import InvalidField, SignalError

log = structlog.get_logger("csdp.api")


class HeadCache:
    """The highest log position this process has seen, so a push costs a query only when a cursor exceeds it.

    NOTE: the value only grows. A store replaced under a running server keeps
    the old, higher value until restart, and then only the pull detects the reset.
    """

    def __init__(self) -> None:
        self.known = 0


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


async def check_push_cursor(request: Request, subject: str) -> None:
    """Raise 409 `reset_required` when the push's cursor is past the last stored position."""
    position = push_cursor(request)
    if not position:
        return
    cache: HeadCache = request.app.state.head_cache
    if position <= cache.known:
        return
    head = await store_of(request).head_position()
    cache.known = max(cache.known, head)
    if position <= head:
        return
    log.warning(
        "push_cursor_ahead",
        cursor=position,
        head=head,
        subject=subject,
        correlation_id=request.scope.get("state", {}).get("correlation_id"),
    )
    raise SignalError(
        SyncSignal.RESET_REQUIRED,
        SIGNAL_SENTENCES[SyncSignal.RESET_REQUIRED].format(cursor=position, head=head),
        field=f"header {CURSOR_HEADER}",
        value=str(position),
        head=str(head),
    )
