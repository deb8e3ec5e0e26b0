"""Litestar application: routes, dependencies, error handlers and store lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar, Request, Response, get
from litestar.di import Provide

from shared_schema import transition_table_json

from .api.context import provide_actor, store_of
from .api.errors import EXCEPTION_HANDLERS
from .api.events import post_events
from .api.queries import get_changes, get_timeline, get_work_order, list_work_orders
from .auth import TokenVerifier
from .config import Settings
from .logging import request_log_middleware
from .store import create_store

log = structlog.get_logger("csdp.server")


@get("/health")
async def health() -> dict[str, str]:
    """Report that the process serves requests."""
    return {"status": "ok"}


@get("/ready")
async def ready(request: Request) -> Response:
    """Report whether the store responds to queries."""
    try:
        events = await store_of(request).count_events()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure instead of raising it
        log.warning("readiness_check_failed", error=str(exc))
        return Response({"status": "unavailable", "error": str(exc)}, status_code=503)
    return Response({"status": "ready", "events": events})


@get("/v1/schema/transitions", media_type="application/json")
async def transitions() -> bytes:
    """Serve the work-order state machine as a table, for client ports."""
    return transition_table_json()


def create_app(settings: Settings, *, demo: bool = False) -> Litestar:
    store = create_store(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await store.open()
        log.info("server_started", database=store.description, dev_auth=settings.dev_auth)
        if demo:
            from .demo import load_demo

            await load_demo(store)
        try:
            yield
        finally:
            await store.close()
            log.info("server_stopped")

    app = Litestar(
        route_handlers=[post_events, list_work_orders, get_work_order, get_timeline, get_changes, health, ready, transitions],
        dependencies={"actor": Provide(provide_actor)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[request_log_middleware],
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.verifier = TokenVerifier(settings)
    return app
