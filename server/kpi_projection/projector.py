"""The asynchronous KPI projector: an asyncio task that folds new events into `kpi_order_history`.

Each step reads up to `batch_size` events after the durable checkpoint in
global order (one query), inserts their history rows and moves the
checkpoint in the same transaction. A crash therefore leaves either the
whole batch and its checkpoint or neither, so no event is counted twice or
skipped. Both stores make global positions visible in commit order (the
SQLite writer lock, the PostgreSQL position counter held until commit), so
every committed position is below the gap-free head and reading
`global_position > checkpoint` never skips an event that commits late.
"""

from __future__ import annotations

import asyncio
import time
from typing import Union

import structlog

from ..store import PostgresStore, Store
from .postgres import PostgresKpiHistory
from .rows import ProjectorLag
from .sqlite import SQLiteKpiHistory

log = structlog.get_logger("csdp.kpi_projector")

KpiHistory = Union[SQLiteKpiHistory, PostgresKpiHistory]

DEFAULT_BATCH_SIZE = 500
# How long the projector sleeps once it has caught up, before it reads the log again.
DEFAULT_POLL_SECONDS = 0.2
# Maximum pause after repeated failures; the pause doubles from the poll interval up to this.
MAX_BACKOFF_SECONDS = 30.0


def kpi_history(store: Store) -> KpiHistory:
    """Return the KPI history operations of an open store."""
    if isinstance(store, PostgresStore):
        return PostgresKpiHistory(store)
    return SQLiteKpiHistory(store)


class KpiProjector:
    """Runs the projection loop as a task between `start` and `stop`."""

    def __init__(
        self, store: Store, *, batch_size: int = DEFAULT_BATCH_SIZE, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> None:
        self.history = kpi_history(store)
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_step_at: float | None = None
        """`time.monotonic()` of the last batch that committed or found nothing to apply, or of `start`."""
        self.failures = 0
        """Batches that failed in a row; 0 after a success."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._stopping.clear()
        self.last_step_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="kpi-projector")

    async def stop(self) -> None:
        """Let the batch in flight commit or roll back, then end the task."""
        if self._task is None:
            return
        self._stopping.set()
        task, self._task = self._task, None
        await task

    async def lag(self) -> ProjectorLag:
        return await self.history.lag()

    async def _run(self) -> None:
        lag = await self._lag_or_none()
        log.info(
            "kpi_projector_started",
            checkpoint=lag.checkpoint_position if lag else None,
            head=lag.head_position if lag else None,
            batch_size=self.batch_size,
        )
        self.failures = 0
        while not self._stopping.is_set():
            try:
                count, checkpoint = await self.history.apply_batch(self.batch_size)
            except Exception as exc:  # noqa: BLE001 - the loop logs, backs off and retries every store failure
                self.failures += 1
                pause = min(self.poll_seconds * 2**self.failures, MAX_BACKOFF_SECONDS)
                log.error("kpi_projector_batch_failed", error=repr(exc), failures=self.failures, retry_in_seconds=pause)
                await self._sleep(pause)
                continue
            self.last_step_at = time.monotonic()
            if self.failures:
                log.info("kpi_projector_recovered", failures=self.failures, checkpoint=checkpoint)
                self.failures = 0
            if count < self.batch_size:
                await self._sleep(self.poll_seconds)
        log.info("kpi_projector_stopped")

    async def _lag_or_none(self) -> ProjectorLag | None:
        try:
            return await self.history.lag()
        except Exception as exc:  # noqa: BLE001 - the start log line must not stop the task
            log.error("kpi_projector_lag_failed", error=repr(exc))
            return None

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
