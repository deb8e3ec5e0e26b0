"""OpenTelemetry tracing: off by default, and when on, spans carry the correlation id and the caller's trace."""

from __future__ import annotations

import sys

import httpx
import pytest
from api_helpers import created
from conftest import SHARED_SSL_CONTEXT
from ops_helpers import serve

from server.app import create_app
from server.config import ConfigError, Settings
from server.security import mint_dev_token
from shared_schema import Role

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="the OpenTelemetry SDK is not installed (dev extra)")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


def test_tracing_off_by_default(settings):
    app = create_app(settings)

    assert app.state.tracing.enabled is False


def test_spans_carry_correlation_id(settings):
    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = Settings(var_dir=settings.var_dir, otel_enabled=True, sla_clock_seconds=0)
    app = create_app(traced, tracer_provider=provider)
    token = mint_dev_token(traced, subject="d-1", role=Role.DISPATCHER)
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Correlation-ID": "tablet-9-sync-1",
        "traceparent": f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01",
    }

    with serve(app) as base_url:
        response = httpx.post(f"{base_url}/v1/events", json={"events": [created("wo-9")]}, headers=headers, verify=SHARED_SSL_CONTEXT)

    assert response.status_code == 200, response.text
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"POST /v1/events", "csdp.ingest_batch"}
    request_span = spans["POST /v1/events"]
    batch_span = spans["csdp.ingest_batch"]
    assert request_span.attributes["csdp.correlation_id"] == "tablet-9-sync-1"
    assert request_span.attributes["http.route"] == "/v1/events"
    assert request_span.attributes["http.response.status_code"] == 200
    assert request_span.attributes["enduser.id"] == "d-1"
    assert format(request_span.context.trace_id, "032x") == CALLER_TRACE_ID
    assert format(request_span.parent.span_id, "016x") == CALLER_SPAN_ID
    assert batch_span.attributes["csdp.correlation_id"] == "tablet-9-sync-1"
    assert batch_span.attributes["csdp.events"] == 1
    assert batch_span.parent.span_id == request_span.context.span_id


def test_tracing_without_sdk_rejected(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)

    with pytest.raises(ConfigError, match=r"CSDP_OTEL_ENABLED is true but the OpenTelemetry SDK is not installed"):
        create_app(Settings(var_dir=settings.var_dir, otel_enabled=True))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CSDP_OTEL_ENABLED": "maybe"}, "CSDP_OTEL_ENABLED='maybe' is invalid: expected true or false"),
        ({"CSDP_OTEL_ENABLED": "true", "CSDP_OTEL_SERVICE_NAME": " "}, "CSDP_OTEL_SERVICE_NAME is empty"),
    ],
    ids=["not-boolean", "empty-service-name"],
)
def test_tracing_settings_validated(environ, message):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)

    assert message in str(caught.value)
