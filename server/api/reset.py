"""The reset signal: a device that synced from another copy of the log must reset first.

After a restore from an older copy, the events that a device based its state
and proposals on may be gone. Two things show it: a cursor past the last
stored position, and a log epoch (EPOCH_HEADER) other than this log's. The
epoch shows a restore even after other clients have written past the
device's cursor. A pull, push or stream request with either gets
409 `reset_required` before anything is read or decided, so no proposal is
rejected for a `base_version` the restored log never reached.
"""

from __future__ import annotations

import structlog
from litestar import Request

from shared_schema.protocol import CURSOR_HEADER, EPOCH_HEADER, SIGNAL_SENTENCES, SyncSignal

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
        # The log's epoch and base position, read from the store once per process.
        self.identity: tuple[str, int] | None = None


# An epoch is 32 hexadecimal digits today. The bound only keeps logs and error bodies short.
MAX_EPOCH_LENGTH = 64

EPOCH_SENTENCE = (
    "The log epoch {sent} is not this server's {epoch}: the store was restored from a backup or replaced "
    "since this device last synced. Drop the confirmed copy of the orders, pull again from 0 and push "
    "again the accepted events after position {head}."
)


async def log_identity(request: Request) -> tuple[str, int]:
    """Return (epoch, base position) of the log, read from the store on the first call of the process."""
    cache: HeadCache = request.app.state.head_cache
    if cache.identity is None:
        cache.identity = await store_of(request).log_identity()
    return cache.identity


async def epoch_headers(request: Request) -> dict[str, str]:
    """Return the response header that names the log's epoch."""
    epoch, _ = await log_identity(request)
    return {EPOCH_HEADER: epoch}


async def check_epoch(request: Request, subject: str) -> None:
    """Raise 409 `reset_required` when the request names another log epoch, and 422 for an invalid one.

    A request without the header passes, as from an older client or a device that never synced.
    """
    raw = request.headers.get(EPOCH_HEADER)
    if raw is None:
        return
    sent = raw.strip()
    if not sent or len(sent) > MAX_EPOCH_LENGTH or not sent.isascii() or not sent.isalnum():
        raise InvalidField(
            f"the {EPOCH_HEADER} header must be the log epoch from a response of this server,"
            f" 1 to {MAX_EPOCH_LENGTH} letters and digits",
            field=f"header {EPOCH_HEADER}",
            value=raw[:MAX_EPOCH_LENGTH],
        )
    epoch, base = await log_identity(request)
    if sent == epoch:
        return
    log.warning(
        "log_epoch_mismatch",
        sent_epoch=sent,
        epoch=epoch,
        base_position=base,
        subject=subject,
        correlation_id=request.scope.get("state", {}).get("correlation_id"),
    )
    raise SignalError(
        SyncSignal.RESET_REQUIRED,
        EPOCH_SENTENCE.format(sent=sent, epoch=epoch, head=base),
        field=f"header {EPOCH_HEADER}",
        value=sent,
        head=str(base),
        epoch=epoch,
    )


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
    await check_epoch(request, subject)
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
    epoch, _ = await log_identity(request)
    raise SignalError(
        SyncSignal.RESET_REQUIRED,
        SIGNAL_SENTENCES[SyncSignal.RESET_REQUIRED].format(cursor=position, head=head),
        field=field,
        value=str(position),
        head=str(head),
        epoch=epoch,
    )


async def check_push_cursor(request: Request, subject: str) -> None:
    """Raise 409 `reset_required` when the push's cursor header is past the last stored position."""
    await check_cursor(request, push_cursor(request), subject, field=f"header {CURSOR_HEADER}")
