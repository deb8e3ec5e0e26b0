"""Prometheus metrics of one server process, served at `GET /metrics`.

Counters and histograms are updated where the work happens (the request log
middleware, `POST /v1/events`). Gauges that describe a state (projection
lag, SLA clocks, live-feed subscribers, database pool use) are read when
`/metrics` is scraped, so they cost nothing between scrapes.

Each `create_app` builds its own `ServerMetrics` with its own registry, so
two apps in one process (as in the tests) do not share series. Each server
process reports only its own counters; with several replicas, Prometheus
scrapes each one and sums them (see docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

import structlog

from shared_schema import EventDecision

from ..kpi_projection.rows import ProjectorLag

if TYPE_CHECKING:
    from ..kpi_projection.projector import KpiProjector
    from ..sla.clock_job import ClockRun, SlaClockJob
    from ..store import Store

log = structlog.get_logger("csdp.metrics")

# The classic text format, which every Prometheus version reads; prometheus-client 0.26
# labels its output 1.0.0, whose text is the same for names like these. Litestar adds the charset.
CONTENT_TYPE = "text/plain; version=0.0.4"

# Bucket bounds in seconds. A batch of up to 500 events takes milliseconds to
# a second; one event's share of its batch is well under a millisecond.
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EVENT_SECONDS_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
REQUEST_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Route label of a request that matched no route, so unknown paths add no series.
UNMATCHED_ROUTE = "unmatched"


class ServerMetrics:
    """The metric families of one server process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.http_requests = Counter(
            "csdp_http_requests",
            "HTTP requests answered, by route name, method and status code.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.http_request_seconds = Histogram(
            "csdp_http_request_seconds",
            "Time from receiving a request to sending its last byte, by route name.",
            ("route",),
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=registry,
        )

        self.ingest_batch_seconds = Histogram(
            "csdp_ingest_batch_seconds",
            "Time to parse, decide and store one POST /v1/events batch.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.ingest_event_seconds = Histogram(
            "csdp_ingest_event_seconds",
            "Each event's share of its batch time (batch time divided by its events), observed once per event.",
            buckets=EVENT_SECONDS_BUCKETS,
            registry=registry,
        )
        self.ingest_batch_events = Histogram(
            "csdp_ingest_batch_events",
            "Events per POST /v1/events batch.",
            buckets=BATCH_EVENTS_BUCKETS,
            registry=registry,
        )

        self.decisions = Counter(
            "csdp_decisions",
            "New decisions made by POST /v1/events, by status and reason code; replays are not counted here.",
            ("status", "reason_code"),
            registry=registry,
        )
        self.decision_replays = Counter(
            "csdp_decision_replays",
            "Proposals answered with their stored decision because the same event was sent again.",
            registry=registry,
        )

        self.projection_lag_positions = Gauge(
            "csdp_projection_lag_positions",
            "Global positions between the log head and the projector's checkpoint.",
            ("projector",),
            registry=registry,
        )
        self.projection_lag_seconds = Gauge(
            "csdp_projection_lag_seconds",
            "Age of the event at the projector's checkpoint while events wait to be applied; 0 when caught up.",
            ("projector",),
            registry=registry,
        )
        self.projector_running = Gauge(
            "csdp_projector_running",
            "1 while the projector's task runs in this process, else 0.",
            ("projector",),
            registry=registry,
        )

        self.sla_clocks = Gauge(
            "csdp_sla_clocks",
            "Running SLA clocks of open orders that are at risk or breached, as of the last SLA clock run.",
            ("state",),
            registry=registry,
        )
        self.sla_crossings = Counter(
            "csdp_sla_crossings",
            "SLA warnings and breaches that the SLA clock job of this process recorded, by kind and clock.",
            ("kind", "clock"),
            registry=registry,
        )
        self.sla_clock_last_run = Gauge(
            "csdp_sla_clock_last_run_timestamp_seconds",
            "Unix time at which the last SLA clock run finished; 0 before the first run.",
            registry=registry,
        )

        self.live_feed_subscribers = Gauge(
            "csdp_live_feed_subscribers",
            "Clients connected to the live feed of this process.",
            registry=registry,
        )
        self.db_connections = Gauge(
            "csdp_db_pool_connections",
            "Database connections of this process by state: in_use, idle, and max (the pool's limit).",
            ("state",),
            registry=registry,
        )

        self.refresh_errors = Counter(
            "csdp_metrics_refresh_errors",
            "Scrapes in which a state gauge could not be read from the store.",
            registry=registry,
        )

        # Series with a fixed label set are created now, so a scrape lists them before their first event.
        for state in ("at_risk", "breached"):
            self.sla_clocks.labels(state=state)
        for state in ("in_use", "idle", "max"):
            self.db_connections.labels(state=state)

    # -- updated as work happens ---------------------------------------------

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        name = route or UNMATCHED_ROUTE
        self.http_requests.labels(route=name, method=method, status=str(status)).inc()
        self.http_request_seconds.labels(route=name).observe(seconds)

    def observe_batch(self, decisions: Iterable[EventDecision], seconds: float) -> None:
        """Record one decided batch: its latency, each event's share of it, and the decisions by status and reason."""
        count = 0
        for decision in decisions:
            count += 1
            if decision.replay:
                self.decision_replays.inc()
            else:
                self.decisions.labels(status=decision.status.value, reason_code=decision.reason_code.value).inc()
        self.ingest_batch_seconds.observe(seconds)
        self.ingest_batch_events.observe(count)
        if count:
            share = seconds / count
            for _ in range(count):
                self.ingest_event_seconds.observe(share)

    def observe_sla_run(self, run: ClockRun) -> None:
        """Count the crossings one SLA clock run recorded; a crossing key reads CYCLE/CLOCK/KIND/THRESHOLD."""
        for _, key in run.recorded:
            parts = key.split("/")
            if len(parts) >= 3:
                self.sla_crossings.labels(kind=parts[2], clock=parts[1]).inc()

    # -- read at scrape time -------------------------------------------------

    async def refresh(
        self,
        *,
        store: Store,
        projector: KpiProjector | None,
        sla_clock: SlaClockJob | None,
        live_hub: Any,
        now: dt.datetime | None = None,
    ) -> None:
        """Read the state gauges.

        A failed read of the projection lag is logged and counted in
        `csdp_metrics_refresh_errors`, and the lag gauges keep their last values.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        if projector is not None:
            self.projector_running.labels(projector="kpi").set(1 if projector.running else 0)
            try:
                lag = await projector.lag()
            except Exception as exc:  # noqa: BLE001 - a scrape reports the other series when the store fails
                self.refresh_errors.inc()
                log.error("metrics_lag_read_failed", projector="kpi", error=repr(exc))
            else:
                self._set_lag(lag, now)
        if sla_clock is not None:
            last = sla_clock.last_run
            if last is not None and last.finished_at is not None:
                self.sla_clocks.labels(state="at_risk").set(last.at_risk)
                self.sla_clocks.labels(state="breached").set(last.breached)
                self.sla_clock_last_run.set(last.finished_at.timestamp())
        # The live feed's hub is optional: a server without it has no subscribers.
        self.live_feed_subscribers.set(getattr(live_hub, "subscriber_count", 0) or 0)
        in_use, idle, maximum = store.connection_use()
        self.db_connections.labels(state="in_use").set(in_use)
        self.db_connections.labels(state="idle").set(idle)
        self.db_connections.labels(state="max").set(maximum)

    def _set_lag(self, lag: ProjectorLag, now: dt.datetime) -> None:
        behind = max(lag.head_position - lag.checkpoint_position, 0)
        seconds = 0.0
        # NOTE: before the projector applies its first event there is no checkpoint time,
        # so the seconds stay 0 while the positions show the backlog.
        if behind and lag.checkpoint_recorded_at is not None:
            seconds = max((now - lag.checkpoint_recorded_at).total_seconds(), 0.0)
        self.projection_lag_positions.labels(projector="kpi").set(behind)
        self.projection_lag_seconds.labels(projector="kpi").set(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
