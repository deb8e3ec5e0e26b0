"""Recording of denied requests for the audit trail.

A denied request is queued in memory when the response is built and written in
batches by a background task, one transaction per batch, so a flood of bad
tokens costs one write per batch instead of one per request. The queue is
bounded: when it is full, further ones are counted and logged, not
stored, so an attacker cannot grow the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

import jwt
import structlog

from shared_schema import Actor

from ..store.audit import DeniedRequest
from ..store.errors import StoreError

if TYPE_CHECKING:
    from litestar import Request

    from ..store import Store

log = structlog.get_logger("csdp.audit")

MAX_FIELD_LENGTH = 256


def _clip(value: object) -> str | None:
    """Keep a printable prefix of a value taken from the request, as text."""
    if value is None:
        return None
    text = "".join(character for character in str(value)[:MAX_FIELD_LENGTH] if character.isprintable())
    return text or None


def _claimed_subject(authorization: str | None) -> str | None:
    """Read the `sub` a rejected token claims without checking it, for the audit only."""
    if not authorization:
        return None
    _, _, token = authorization.partition(" ")
    if not token or len(token) > 16 * 1024:
        return None
    try:
        claims: Any = jwt.decode(token.strip(), options={"verify_signature": False})
    except Exception:  # noqa: BLE001 - any unreadable token simply claims no subject
        return None
    return _clip(claims.get("sub")) if isinstance(claims, dict) else None


def denied_request_from_headers(
    *,
    method: str,
    path: str,
    authorization: str | None,
    device_id: str | None,
    correlation_id: str | None,
    status_code: int,
    reason: str,
    message: str,
) -> DeniedRequest:
    """Build a denied request from raw header values, for a request rejected before the token was checked."""
    return DeniedRequest(
        denied_at=dt.datetime.now(dt.timezone.utc),
        subject=_claimed_subject(authorization),
        subject_verified=False,
        role=None,
        device_id=_clip(device_id),
        correlation_id=correlation_id,
        method=method,
        path=_clip(path) or "/",
        status_code=status_code,
        reason=reason,
        message=message[:1000],
    )


def denied_request_from(request: Request, status_code: int, reason: str, message: str) -> DeniedRequest:
    state = request.scope.get("state", {})
    actor: Actor | None = state.get("actor")
    return DeniedRequest(
        denied_at=dt.datetime.now(dt.timezone.utc),
        subject=actor.subject if actor else _claimed_subject(request.headers.get("authorization")),
        subject_verified=actor is not None,
        role=actor.role.value if actor else None,
        device_id=_clip(request.headers.get("x-device-id")),
        correlation_id=state.get("correlation_id"),
        method=request.method,
        path=_clip(request.url.path) or "/",
        status_code=status_code,
        reason=reason,
        message=message[:1000],
    )


class DeniedRequestRecorder:
    """Queues denied requests and writes them to the store in batches."""

    def __init__(self, store: Store, *, max_pending: int = 10_000, batch_size: int = 500) -> None:
        self._store = store
        self._queue: asyncio.Queue[DeniedRequest] = asyncio.Queue(maxsize=max_pending)
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def record(self, denied: DeniedRequest) -> None:
        try:
            self._queue.put_nowait(denied)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("denied_request_not_recorded", reason=denied.reason, path=denied.path, dropped=self.dropped)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="denied-request-recorder")

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, waiting up to `timeout` seconds, then stop the task."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            log.error("denied_requests_lost", requests=self._queue.qsize(), error="the store did not take them before shutdown")
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first, *self._take_batch(self._batch_size - 1)]
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _take_batch(self, size: int | None = None) -> list[DeniedRequest]:
        batch: list[DeniedRequest] = []
        while not self._queue.empty() and len(batch) < (size or self._batch_size):
            batch.append(self._queue.get_nowait())
        return batch

    async def _write(self, batch: list[DeniedRequest]) -> None:
        for attempt in range(1, 4):
            try:
                await self._store.record_denied_requests(batch)
                return
            except StoreError as exc:
                log.error("denied_request_write_failed", error=str(exc), requests=len(batch), attempt=attempt)
                await asyncio.sleep(0.5 * attempt)
        log.error("denied_requests_lost", requests=len(batch), reasons=sorted({item.reason for item in batch}))
