"""Operations endpoints: `GET /health`, `GET /ready` (both also `HEAD`) and `GET /metrics`."""

from __future__ import annotations

from litestar import Request, Response, get, route
from litestar.enums import HttpMethod

from ..observability.metrics import CONTENT_TYPE


# Load balancers often probe with HEAD, so both probes accept it and respond as to GET, without a body.
PROBE_METHODS = [HttpMethod.GET, HttpMethod.HEAD]


@route("/health", http_method=PROBE_METHODS, name="health")
async def health() -> dict[str, str]:
    """Report that the process serves requests; nothing else is checked."""
    return {"status": "ok"}


@route("/ready", http_method=PROBE_METHODS, name="ready")
async def ready(request: Request) -> Response:
    """Report whether this replica can take traffic: 200, or 503 with a body naming each check that failed."""
    readiness = await request.app.state.readiness.check()
    return Response(readiness.body(), status_code=200 if readiness.ready else 503)


@get("/metrics", name="metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Serve this process's metrics in the Prometheus text format."""
    state = request.app.state
    await state.metrics.refresh(
        store=state.store,
        projector=state.kpi_projector,
        sla_clock=state.sla_clock,
        live_hub=getattr(state, "live_hub", None),
    )
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
