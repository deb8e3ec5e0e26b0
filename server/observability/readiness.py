"""The checks behind `GET /ready`: the database, its schema version and the background jobs.

A replica is ready when its store responds to a query and the schema
version is the one this server was built for. The KPI projector's task must
run and have made progress recently. The SLA clock job, unless switched
off, must run and have finished a run recently. The blob store must be
writable (local folder) or a HEAD request on its bucket must succeed (S3). Each failing check names its cause in the
503 body, so a load balancer's log tells the operator what to fix.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import structlog

from ..blobs.store import BlobStoreError

if TYPE_CHECKING:
    from ..blobs.store import BlobStore
    from ..kpi_projection.projector import KpiProjector
    from ..sla.clock_job import SlaClockJob
    from ..store import Store

log = structlog.get_logger("csdp.readiness")

# The projector commits a batch or finds the log empty every poll (0.2 s) and
# backs off for at most 30 s after a failure, so a minute without a
# successful step means it is stuck or failing every time.
DEFAULT_PROJECTOR_STALL_SECONDS = 60.0
# An SLA clock run may take several seconds on a large site. Three missed
# intervals, and at least a minute, mark the job as stalled.
SLA_CLOCK_MISSED_INTERVALS = 3
MIN_SLA_CLOCK_STALL_SECONDS = 60.0
# Load balancers probe every few seconds. The blob store's result is reused for
# this long, so /ready sends at most one S3 request per interval.
BLOB_STORE_CHECK_CACHE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]
    events: int | None
    """Events in the log, None when the store cannot be queried."""

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def body(self) -> dict[str, object]:
        """Return the response body: the status and the event count, plus every check when one fails.

        A ready body stays `{"status": "ready", "events": N}`, the shape monitors already read.
        """
        body: dict[str, object] = {"status": "ready" if self.ready else "not_ready"}
        if self.events is not None:
            body["events"] = self.events
        if not self.ready:
            body["checks"] = {check.name: {"ok": check.ok, "detail": check.detail} for check in self.checks}
            body["not_ready"] = [f"{check.name}: {check.detail}" for check in self.checks if not check.ok]
        return body


class ReadinessChecker:
    """Runs the readiness checks of one server process."""

    def __init__(
        self,
        store: Store,
        projector: KpiProjector | None,
        sla_clock: SlaClockJob,
        *,
        projector_stall_seconds: float = DEFAULT_PROJECTOR_STALL_SECONDS,
        blob_store: BlobStore | None = None,
        blob_store_cache_seconds: float = BLOB_STORE_CHECK_CACHE_SECONDS,
    ) -> None:
        self.store = store
        self.blob_store = blob_store
        self.blob_store_cache_seconds = blob_store_cache_seconds
        self._blob_store_result: tuple[float, Check] | None = None
        self.projector = projector
        self.sla_clock = sla_clock
        self.projector_stall_seconds = projector_stall_seconds
        self._failing_logged: list[str] = []

    @property
    def sla_clock_stall_seconds(self) -> float:
        return max(SLA_CLOCK_MISSED_INTERVALS * self.sla_clock.interval_seconds, MIN_SLA_CLOCK_STALL_SECONDS)

    async def check(self) -> Readiness:
        database, schema, events = await self._check_store()
        checks = (database, schema, self._check_projector(), self._check_sla_clock(), await self._check_blob_store())
        readiness = Readiness(checks, events)
        # Probes repeat every few seconds, so a line is logged only when the set of failing checks changes.
        failing = [check.name for check in checks if not check.ok]
        if failing != self._failing_logged:
            if failing:
                log.warning("not_ready", causes=[f"{check.name}: {check.detail}" for check in checks if not check.ok])
            else:
                log.info("ready_again", previously_failing=self._failing_logged)
            self._failing_logged = failing
        return readiness

    async def _check_store(self) -> tuple[Check, Check, int | None]:
        """Check the store and its schema version; also return the event count, None when it cannot be read."""
        try:
            found = await self.store.schema_version()
            events = await self.store.count_events()
        except Exception as exc:  # noqa: BLE001 - any failure to query the store means not ready
            reason = f"the store {self.store.description} cannot be queried: {exc}"
            unknown = Check("migrations", False, "unknown while the database is unreachable")
            return Check("database", False, reason), unknown, None
        expected = self.store.expected_schema_version
        database = Check("database", True, self.store.description)
        if found == expected:
            return database, Check("migrations", True, f"schema version {found}"), events
        if found < expected:
            detail = f"schema version {found} is behind this server's {expected}; run csdp migrate"
        else:
            detail = f"schema version {found} is ahead of this server's {expected}; upgrade this server"
        return database, Check("migrations", False, detail), events

    async def _check_blob_store(self) -> Check:
        blob_store = self.blob_store
        if blob_store is None:
            return Check("blob_store", True, "not checked in this process")
        now = time.monotonic()
        if self._blob_store_result is not None and now - self._blob_store_result[0] < self.blob_store_cache_seconds:
            return self._blob_store_result[1]
        try:
            await blob_store.check()
        except BlobStoreError as exc:
            result = Check("blob_store", False, str(exc))
        else:
            result = Check("blob_store", True, blob_store.description)
        self._blob_store_result = (now, result)
        return result

    def _check_projector(self) -> Check:
        projector = self.projector
        if projector is None:
            return Check("kpi_projector", True, "off in this process")
        if not projector.running:
            return Check("kpi_projector", False, "the task is not running")
        idle = time.monotonic() - (projector.last_step_at or 0.0)
        if idle > self.projector_stall_seconds:
            return Check(
                "kpi_projector",
                False,
                f"no batch has succeeded for {idle:.0f} s ({projector.failures} failures in a row)",
            )
        return Check("kpi_projector", True, "running")

    def _check_sla_clock(self) -> Check:
        job = self.sla_clock
        if not job.enabled:
            return Check("sla_clock", True, "off (CSDP_SLA_CLOCK_SECONDS is 0)")
        if not job.running:
            return Check("sla_clock", False, "the task is not running")
        since = job.last_attempt_at if job.last_attempt_at is not None else job.started_at
        idle = time.monotonic() - (since or 0.0)
        if idle > self.sla_clock_stall_seconds:
            return Check("sla_clock", False, f"no run has finished for {idle:.0f} s")
        return Check("sla_clock", True, "running")
