"""Fuzzing of every operation in /schema/openapi.json with schemathesis, against a real server on loopback.

Each operation gets schema-valid and schema-invalid requests with an admin
token. The checks: no 5xx, every status code and body documented, the
documented content type and headers, and a 401 without the token. The number
of examples per operation is bounded by FUZZ_EXAMPLES, so the module takes
about a minute; raise it with CSDP_FUZZ_EXAMPLES for a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from conftest import LiveServer, start_server, stop_server
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.config import Settings
from shared_schema import Role

FUZZ_EXAMPLES = int(os.environ.get("CSDP_FUZZ_EXAMPLES", "50"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The rate limit is raised so that the fuzzer's burst of requests is not rejected with 429.
    server_settings = Settings(
        var_dir=tmp_path_factory.mktemp("fuzz") / "var", rate_limit_per_minute=1_000_000, rate_limit_burst=1_000_000
    )
    uvicorn_server, thread, base_url = start_server(server_settings)
    try:
        yield LiveServer(base_url=base_url, settings=server_settings)
    finally:
        stop_server(uvicorn_server, thread)


# Every operation of the document; test_operations_listed fails when a route is added without a line here.
OPERATIONS = [
    "POST /v1/events",
    "GET /v1/work-orders",
    "GET /v1/work-orders/{work_order_id}",
    "GET /v1/work-orders/{work_order_id}/timeline",
    "GET /v1/work-orders/{work_order_id}/asset-configuration",
    "GET /v1/work-orders/{work_order_id}/sla",
    "GET /v1/sync/changes",
    "GET /v1/audit",
    "GET /v1/kpi",
    "GET /v1/engineers/board",
    "POST /v1/catalog",
    "GET /v1/catalog/engineers",
    "GET /v1/catalog/sites",
    "GET /v1/catalog/assets",
    "GET /v1/catalog/contracts",
    "GET /v1/catalog/assets/{asset_id}/configuration",
    "GET /v1/reviews",
    "GET /v1/sla/at-risk",
    "POST /v1/blobs",
    "GET /v1/blobs/{sha256}/upload",
    "PATCH /v1/blobs/{sha256}/upload",
    "GET /v1/blobs/{sha256}",
    "HEAD /v1/blobs/{sha256}",
    "GET /v1/stream",
    "GET /health",
    "HEAD /health",
    "GET /ready",
    "HEAD /ready",
    "GET /v1/schema/transitions",
]
# A blob chunk is raw bytes; the media type the upload protocol names is sent like any octet stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

# A live stream never ends, so a fuzzed call would wait forever; tests/test_live_stream.py covers its bad input.
STREAMS = {"GET /v1/stream"}
GENERATION_MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/schema/openapi.json")


def operation_of(api_schema: schemathesis.BaseSchema, label: str) -> schemathesis.APIOperation:
    method, path = label.split(" ", 1)
    return api_schema[path][method]


def test_operations_listed(api_schema):
    found = {result.ok().label for result in api_schema.get_all_operations()}

    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", GENERATION_MODES, ids=lambda mode: mode.value)
@pytest.mark.parametrize("label", [label for label in OPERATIONS if label not in STREAMS])
def test_operation_fuzzed(api_schema, fuzz_server, label, mode):
    operation = operation_of(api_schema, label)
    headers = {"Authorization": f"Bearer {fuzz_server.token(Role.ADMIN, 'fuzz-admin')}"}
    has_input = bool(operation.path_parameters or operation.query or operation.body)
    if mode is schemathesis.GenerationMode.NEGATIVE and not has_input:
        pytest.skip("no parameter or body to make invalid")

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=fuzz_server.base_url, headers=headers, checks=CHECKS)

    fuzz()


def test_schema_declares_bearer_auth(fuzz_server):
    document = httpx.get(f"{fuzz_server.base_url}/schema/openapi.json").json()

    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert document["paths"]["/v1/schema/transitions"]["get"]["security"] == []
    assert "security" not in document["paths"]["/v1/work-orders"]["get"]


def test_schema_documents_hand_checked_input(fuzz_server):
    """The handlers decode bodies and queries themselves; the document must still describe them."""
    document = httpx.get(f"{fuzz_server.base_url}/schema/openapi.json").json()
    paths = document["paths"]
    schemas = document["components"]["schemas"]

    events_body = paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert events_body == {"$ref": "#/components/schemas/EventBatch"}
    assert schemas["EventBatch"]["properties"]["events"]["minItems"] == 1
    assert schemas["EventBatch"]["properties"]["events"]["maxItems"] == fuzz_server.settings.max_batch_events
    assert "requestBody" in paths["/v1/catalog"]["post"]
    chunk = paths["/v1/blobs/{sha256}/upload"]["patch"]
    assert "application/offset+octet-stream" in chunk["requestBody"]["content"]
    assert {"name": "Upload-Offset", "in": "header"}.items() <= chunk["parameters"][-1].items()
    assert "409" in paths["/v1/sync/changes"]["get"]["responses"]
    assert "409" not in paths["/v1/work-orders"]["get"]["responses"]

    kpi_parameters = {parameter["name"]: parameter for parameter in paths["/v1/kpi"]["get"]["parameters"]}
    assert sorted(kpi_parameters) == ["from", "group_by", "repeat_window_days", "to"]
    assert kpi_parameters["from"]["required"] is True
    assert kpi_parameters["repeat_window_days"]["required"] is False

    assert sorted(paths["/v1/events"]["post"]["responses"]) == [
        "200", "400", "401", "403", "409", "413", "422", "426", "429", "503"
    ]
    assert sorted(paths["/v1/work-orders/{work_order_id}"]["get"]["responses"]) == [
        "200", "401", "403", "404", "422", "426", "429", "503"
    ]
    assert sorted(paths["/health"]["get"]["responses"]) == ["200", "422", "426", "503"]


def test_transitions_response_schema_is_table(fuzz_server):
    """The table is sent as pre-encoded bytes, which Litestar documented as a string."""
    document = httpx.get(f"{fuzz_server.base_url}/schema/openapi.json").json()

    schema = document["paths"]["/v1/schema/transitions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]

    assert schema["type"] == "array"
    assert schema["items"] == {"$ref": "#/components/schemas/Transition"}
    assert set(document["components"]["schemas"]["Transition"]["required"]) == {"from_state", "event_type", "to_state", "roles"}
