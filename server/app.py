"""Litestar application: routes, dependencies, error handlers and store lifecycle."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from shared_schema import transition_table_json

from .api.context import provide_actor, store_of
from .api.errors import EXCEPTION_HANDLERS
from .api.events import post_events
from .api.queries import get_changes, get_timeline, get_work_order, list_work_orders
from .api.audit import list_audit
from .api.board import get_engineer_board
from .api.kpi import get_kpi
from .kpi_projection.projector import KpiProjector
from .api import catalog as catalog_api
from .api import openapi
from .api.reviews import list_reviews
from .api.sla import get_work_order_sla, list_at_risk
from .security import TokenVerifier
from .security.audit import DeniedRequestRecorder
from .security.rate_limit import RateLimiter
from .security.rbac import authorize
from .config import Settings, redact_url
from .logging import request_log_middleware
from .sla.clock_job import SlaClockJob
from .store import create_store

log = structlog.get_logger("csdp.server")


@get("/health", name="health")
async def health() -> dict[str, str]:
    """Report that the process serves requests."""
    return {"status": "ok"}


@get("/ready", name="ready")
async def ready(request: Request) -> Response:
    """Report whether the store responds to queries."""
    try:
        events = await store_of(request).count_events()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure instead of raising it
        log.warning("readiness_check_failed", error=str(exc))
        return Response({"status": "unavailable", "error": str(exc)}, status_code=503)
    return Response({"status": "ready", "events": events})


@get("/v1/schema/transitions", media_type="application/json", name="schema.transitions")
async def transitions() -> bytes:
    """Serve the work-order state machine as a table, for client ports."""
    return transition_table_json()


def create_app(settings: Settings, *, demo: bool = False, kpi_projector: bool = True) -> Litestar:
    """Build the app; `kpi_projector=False` leaves the KPI projector off, so `GET /v1/kpi` reports its lag."""
    settings.validate()
    store = create_store(settings)
    projector = KpiProjector(store) if kpi_projector else None
    verifier = TokenVerifier(settings)
    denied_requests = DeniedRequestRecorder(store)
    sla_clock = SlaClockJob(store, settings.sla_clock_seconds, dt.timedelta(seconds=settings.clock_skew_tolerance_seconds))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await store.open()
        denied_requests.start()
        log.info(
            "server_started",
            database=store.description,
            dev_auth=settings.dev_auth_enabled,
            jwks_url=redact_url(settings.jwks_url, hide_bare_user=True) or None,
            algorithms=verifier.accepted_algorithms,
        )
        if demo:
            from .demo import load_demo

            await load_demo(store)
        if projector is not None:
            projector.start()
        sla_clock.start()
        try:
            yield
        finally:
            await sla_clock.stop()
            if projector is not None:
                await projector.stop()
            await denied_requests.stop()
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
            list_reviews,
            get_work_order_sla,
            list_at_risk,
            health,
            ready,
            transitions,
        ],
        guards=[authorize],
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
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    return app
