"""Litestar application: routes, dependencies, error handlers and store lifecycle."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from shared_schema import transition_table_json

from .api.context import provide_actor
from .api.errors import EXCEPTION_HANDLERS
from .api.events import post_events
from .api.protocol import check_protocol_version
from .api.queries import get_changes, get_timeline, get_work_order, list_work_orders
from .api.reset import HeadCache
from .api.audit import list_audit
from .api import blobs as blobs_api
from .api.board import get_engineer_board
from .api.kpi import get_kpi
from .api.operations import health, metrics, ready
from .kpi_projection.projector import KpiProjector
from .api import catalog as catalog_api
from .api import openapi
from .api.reviews import list_reviews
from .api.sla import get_work_order_sla, list_at_risk
from .api import live as live_api
from .api import board_page
from .live import create_live_hub
from .security import TokenVerifier
from .security.audit import DeniedRequestRecorder
from .security.rate_limit import RateLimiter
from .security.rbac import authorize
from .config import Settings, redact_url
from .logging import request_log_middleware
from .observability.metrics import ServerMetrics
from .observability.readiness import ReadinessChecker
from .observability.tracing import create_tracing
from .sla.clock_job import SlaClockJob
from .store import create_store
from .store.blob_index import blob_index_for
from .blobs import BlobStoreError, BlobUploads, create_blob_store

log = structlog.get_logger("csdp.server")


@get("/v1/schema/transitions", media_type="application/json", name="schema.transitions")
async def transitions() -> bytes:
    """Serve the work-order state machine as a table, for client ports."""
    return transition_table_json()


def create_app(
    settings: Settings, *, demo: bool = False, kpi_projector: bool = True, tracer_provider: Any | None = None
) -> Litestar:
    """Build the app.

    `kpi_projector=False` leaves the KPI projector off, so `GET /v1/kpi` reports its lag.
    `tracer_provider` (an OpenTelemetry SDK TracerProvider) replaces the OTLP exporter when
    `settings.otel_enabled` is true.
    """
    settings.validate()
    tracing = create_tracing(settings, tracer_provider)
    store = create_store(settings)
    blob_store = create_blob_store(settings)
    blob_index = blob_index_for(store)
    blob_uploads = BlobUploads(settings.blob_staging_dir, blob_store, blob_index)
    projector = KpiProjector(store) if kpi_projector else None
    verifier = TokenVerifier(settings)
    denied_requests = DeniedRequestRecorder(store)
    live_hub, wake_listener = create_live_hub(settings, store)
    server_metrics = ServerMetrics()
    sla_clock = SlaClockJob(
        store,
        settings.sla_clock_seconds,
        dt.timedelta(seconds=settings.clock_skew_tolerance_seconds),
        on_run=server_metrics.observe_sla_run,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await store.open()
        try:
            await blob_store.open()
            await blob_uploads.open()
        except (BlobStoreError, OSError) as exc:
            log.error("blob_store_unavailable", store=blob_store.description, error=str(exc))
            await store.close()
            raise
        denied_requests.start()
        log.info(
            "server_started",
            database=store.description,
            blob_store=blob_store.description,
            dev_auth=settings.dev_auth_enabled,
            jwks_url=redact_url(settings.jwks_url, hide_bare_user=True) or None,
            algorithms=verifier.accepted_algorithms,
            tracing=tracing.enabled,
            metrics_token=bool(settings.metrics_token),
        )
        if demo:
            from .demo import load_demo

            await load_demo(store)
        if projector is not None:
            projector.start()
        sla_clock.start()
        await live_hub.start()
        if wake_listener is not None:
            wake_listener.start()
        try:
            yield
        finally:
            if wake_listener is not None:
                await wake_listener.stop()
            await live_hub.stop()
            await sla_clock.stop()
            if projector is not None:
                await projector.stop()
            await denied_requests.stop()
            await blob_store.close()
            await store.close()
            log.info("server_stopped")

    app = Litestar(
        route_handlers=[
            post_events,
            list_work_orders,
            get_work_order,
            get_timeline,
            get_changes,
            list_audit,
            get_kpi,
            get_engineer_board,
            *catalog_api.ROUTES,
            *blobs_api.ROUTES,
            list_reviews,
            get_work_order_sla,
            list_at_risk,
            *live_api.ROUTES,
            *board_page.ROUTES,
            health,
            ready,
            metrics,
            transitions,
        ],
        guards=[check_protocol_version, authorize],
        openapi_config=OpenAPIConfig(
            title="CNC-FSM Core",
            version="1",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"bearer": []}],
            render_plugins=[openapi.CompletedJsonRenderPlugin()],
        ),
        dependencies={"actor": Provide(provide_actor)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[request_log_middleware],
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.verifier = verifier
    app.state.denied_requests = denied_requests
    app.state.kpi_projector = projector
    app.state.head_cache = HeadCache()
    app.state.blob_index = blob_index
    app.state.blob_uploads = blob_uploads
    app.state.live_hub = live_hub
    app.state.live_wake_listener = wake_listener
    app.state.sla_clock = sla_clock
    app.state.metrics = server_metrics
    app.state.tracing = tracing
    app.state.readiness = ReadinessChecker(store, projector, sla_clock, blob_store=blob_store)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    return app
