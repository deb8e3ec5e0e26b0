"""Optional OpenTelemetry tracing: one server span per request, one inner span per ingested batch.

Tracing is off unless `CSDP_OTEL_ENABLED` is true, and the OpenTelemetry
packages are imported only then, so a server without the `[otel]` extra
runs unchanged. Spans carry the request's correlation id as the attribute
`csdp.correlation_id`, and an incoming W3C `traceparent` header makes the
request span a child of the caller's trace. Spans are exported over OTLP/HTTP;
the exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables (endpoint,
headers, timeout).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..config import ConfigError

if TYPE_CHECKING:
    from ..config import Settings

INSTRUMENTATION_NAME = "csdp"
CORRELATION_ATTRIBUTE = "csdp.correlation_id"


class Tracing:
    """Starts spans when tracing is on and does nothing when it is off."""

    def __init__(self, tracer: Any | None = None) -> None:
        self._tracer = tracer

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def request_span(self, method: str, path: str, headers: Mapping[str, str], correlation_id: str) -> Iterator[Any]:
        """Start the server span of one request as the current span; yield it, or None when tracing is off."""
        if self._tracer is None:
            yield None
            return
        from opentelemetry import propagate, trace

        parent = propagate.extract(dict(headers))
        with self._tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, CORRELATION_ATTRIBUTE: correlation_id},
        ) as span:
            yield span

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """Start an inner span below the current one; yield it, or None when tracing is off."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span


def create_tracing(settings: Settings, tracer_provider: Any | None = None) -> Tracing:
    """Build the app's tracing from the settings; `tracer_provider` replaces the OTLP exporter (tests pass one)."""
    if not settings.otel_enabled:
        return Tracing()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "CSDP_OTEL_ENABLED is true but the OpenTelemetry SDK is not installed; "
            "install it with: pip install 'cnc-fsm-core[otel]'"
        ) from None
    if tracer_provider is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(
                "CSDP_OTEL_ENABLED is true but the OTLP exporter is not installed; "
                "install it with: pip install 'cnc-fsm-core[otel]'"
            ) from None
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(tracer_provider.get_tracer(INSTRUMENTATION_NAME))
