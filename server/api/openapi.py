"""Completion of the generated OpenAPI document with what the handlers check by hand.

The handlers decode request bodies and query strings themselves, so that each
error names the field and the value at fault. Litestar therefore finds no
request body, no query parameter and no error response in their signatures.
`complete_openapi` adds them to the document served at /schema/openapi.json,
so that clients and fuzzers see the API as it behaves.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from shared_schema import EventBatch, Priority, WorkOrderStatus
from shared_schema.blobs import BlobUploadRequest
from shared_schema.transitions import Transition

from ..catalog.commands import CatalogRequest
from ..kpi import GroupBy
from ..security.rbac import PUBLIC_ENDPOINTS
from .kpi import MAX_REPEAT_WINDOW_DAYS

SCHEMA_REF = "#/components/schemas/{name}"
MAX_INT64 = 2**63 - 1

ERROR_BODY = {
    "type": "object",
    "description": "A rejected request: `error` is a machine code, `message` a sentence that says what to change.",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "correlation_id": {"type": "string"},
        "field": {"type": "string", "description": "The field, query parameter or JSON path at fault."},
        "value": {"description": "The value at fault, shortened when long."},
    },
    "additionalProperties": True,
}

# Sentences of the documented error responses, by status code.
ERROR_STATUSES = {
    "400": "The body is not JSON, is empty, or is nested too deeply.",
    "401": "The bearer token is missing, expired or invalid.",
    "403": "The token's role may not call this operation, or the body claims an identity.",
    "404": "The work order, asset or blob does not exist.",
    "409": (
        "The request conflicts with the server's state: a cursor ahead of the log (`reset_required`), "
        "or a blob chunk at the wrong offset or a blob declared with another size."
    ),
    "413": "The body is larger than the server's limit.",
    "415": "The chunk's Content-Type is not application/offset+octet-stream or application/octet-stream.",
    "422": "A query parameter or a body field is invalid; `field` and `value` name it.",
    "426": "The X-CSDP-Protocol-Version header names a protocol version this server does not speak.",
    "429": "Too many requests from this subject; retry after the Retry-After header's seconds.",
    "503": "The store is unavailable; retry later.",
}
PUBLIC_STATUSES = ("422", "426", "503")
# Statuses that only the listed operations return. Every other operation leaves them out.
OPERATION_STATUSES: dict[str, set[tuple[str, str]]] = {
    "409": {
        ("get", "/v1/sync/changes"),
        ("post", "/v1/events"),
        ("post", "/v1/blobs"),
        ("patch", "/v1/blobs/{sha256}/upload"),
    },
    "415": {("patch", "/v1/blobs/{sha256}/upload")},
}
# Operations whose request body has a size limit, so they may return 413.
SIZE_LIMITED = {("post", path) for path in ("/v1/events", "/v1/catalog", "/v1/blobs")} | {
    ("patch", "/v1/blobs/{sha256}/upload")
}


def _integer(minimum: int, maximum: int = MAX_INT64) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _enum(values: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": values}


INSTANT = {"type": "string", "format": "date-time", "description": "ISO 8601 instant with a UTC offset."}
CURSOR = {"type": "string", "description": "Opaque cursor from the previous page's `next_cursor`."}
TEXT = {"type": "string", "minLength": 1}
PAGE_LIMIT = _integer(1, 1000)

# Query parameters of each operation, as its handler reads them; none is required unless marked.
QUERY_PARAMETERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/v1/work-orders"): {
        "status": _enum([member.value for member in WorkOrderStatus]),
        "engineer_id": TEXT,
        "priority": _enum([member.value for member in Priority]),
        "cursor": CURSOR,
        "limit": PAGE_LIMIT,
    },
    ("get", "/v1/sync/changes"): {"since": _integer(0), "limit": _integer(1, 5000)},
    ("get", "/v1/audit"): {
        "subject": TEXT,
        "outcome": TEXT,
        "reason": TEXT,
        "work_order_id": TEXT,
        "correlation_id": TEXT,
        "device_id": TEXT,
        "from": INSTANT,
        "to": INSTANT,
        "cursor": CURSOR,
        "limit": PAGE_LIMIT,
    },
    ("get", "/v1/kpi"): {
        "from": {**INSTANT, "x-required": True},
        "to": {**INSTANT, "x-required": True},
        "group_by": {**_enum([member.value for member in GroupBy]), "x-required": True},
        "repeat_window_days": _integer(1, MAX_REPEAT_WINDOW_DAYS),
    },
    ("get", "/v1/reviews"): {
        "work_order_id": TEXT,
        "subject": TEXT,
        "reason_code": TEXT,
        "cursor": CURSOR,
        "limit": PAGE_LIMIT,
    },
    ("get", "/v1/catalog/engineers"): {"cursor": CURSOR, "limit": PAGE_LIMIT},
    ("get", "/v1/catalog/sites"): {"cursor": CURSOR, "limit": PAGE_LIMIT},
    ("get", "/v1/catalog/assets"): {"cursor": CURSOR, "limit": PAGE_LIMIT},
    ("get", "/v1/catalog/contracts"): {"cursor": CURSOR, "limit": PAGE_LIMIT},
    ("get", "/v1/catalog/assets/{asset_id}/configuration"): {"at": INSTANT},
    ("get", "/v1/sla/at-risk"): {"cursor": CURSOR, "limit": PAGE_LIMIT},
    ("get", "/v1/stream"): {
        "since": _integer(0),
        "work_order_id": TEXT,
        "engineer_id": TEXT,
        "kinds": {"type": "string", "description": "Comma-separated event types."},
        "access_token": {"type": "string", "description": "The bearer token, for browsers that cannot send a header."},
    },
}
# A chunk of a resumable blob upload: raw bytes at the offset the Upload-Offset header gives.
CHUNK_BODY = {
    "required": True,
    "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
UPLOAD_OFFSET = {"name": "Upload-Offset", "in": "header", "required": True, "schema": _integer(0)}

REQUEST_BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/events"): EventBatch,
    ("post", "/v1/catalog"): CatalogRequest,
    ("post", "/v1/blobs"): BlobUploadRequest,
}

# Bodies of 200 responses that handlers send as pre-encoded bytes, which Litestar documents as a string.
RESPONSE_BODIES: dict[tuple[str, str], Any] = {
    ("get", "/v1/schema/transitions"): list[Transition],
}


def complete_openapi(
    document: dict[str, Any], public_paths: set[str], max_batch_events: int | None = None
) -> dict[str, Any]:
    """Add request bodies, query parameters and error responses to `document`, in place.

    Operations on `public_paths` need no token, so they get an empty `security` list.
    `max_batch_events` is the server's limit of events per POST /v1/events.
    """
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ERROR_BODY
    types = [*REQUEST_BODIES.values(), *RESPONSE_BODIES.values()]
    type_schemas, type_components = msgspec.json.schema_components(types, ref_template=SCHEMA_REF)
    for name, schema in type_components.items():
        components.setdefault(name, schema)
    bodies = dict(zip(REQUEST_BODIES, type_schemas[: len(REQUEST_BODIES)], strict=True))
    replies = dict(zip(RESPONSE_BODIES, type_schemas[len(REQUEST_BODIES) :], strict=True))
    # An empty batch is rejected, and so is one above the configured limit.
    events = components["EventBatch"]["properties"]["events"]
    events["minItems"] = 1
    if max_batch_events is not None:
        events["maxItems"] = max_batch_events

    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            key = (method, path)
            public = path in public_paths
            if public:
                operation["security"] = []
            if key in bodies:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": bodies[key]}}}
            if key in replies:
                operation["responses"]["200"]["content"] = {"application/json": {"schema": replies[key]}}
            if key == ("patch", "/v1/blobs/{sha256}/upload"):
                operation["requestBody"] = CHUNK_BODY
            if key == ("head", "/v1/blobs/{sha256}"):
                # A HEAD response has the download's headers and no body.
                operation["responses"]["200"].pop("content", None)
            if key == ("get", "/v1/blobs/{sha256}"):
                # The blob comes back with the media type it was declared with.
                operation["responses"]["200"]["content"] = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
            if key == ("get", "/v1/stream"):
                operation["responses"]["200"]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
            parameters = [parameter for parameter in operation.get("parameters", []) if parameter.get("in") != "query"]
            for name, schema in QUERY_PARAMETERS.get(key, {}).items():
                schema = dict(schema)
                required = schema.pop("x-required", False)
                parameters.append({"name": name, "in": "query", "required": required, "schema": schema})
            if key == ("patch", "/v1/blobs/{sha256}/upload"):
                parameters.append(UPLOAD_OFFSET)
            if parameters:
                operation["parameters"] = parameters
            _add_error_responses(operation, path, method, public)
    return document


def _add_error_responses(operation: dict[str, Any], path: str, method: str, public: bool) -> None:
    responses = operation.setdefault("responses", {})
    # Litestar documents a 400 for path parameters in its own error shape, which this API never sends.
    for status in [status for status in responses if not status.startswith("2")]:
        del responses[status]
    statuses = list(PUBLIC_STATUSES if public else ERROR_STATUSES)
    key = (method, path)
    statuses = [status for status in statuses if key in OPERATION_STATUSES.get(status, {key})]
    if method != "post":
        statuses = [status for status in statuses if status != "400"]
    if key not in SIZE_LIMITED:
        statuses = [status for status in statuses if status != "413"]
    if "{" not in path:
        statuses = [status for status in statuses if status != "404"]
    for status in statuses:
        responses[status] = {
            "description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": {"$ref": SCHEMA_REF.format(name="ErrorBody")}}},
        }


def _public_paths(app: Litestar) -> set[str]:
    return {
        route.path
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.name in PUBLIC_ENDPOINTS
    }


class CompletedJsonRenderPlugin(JsonRenderPlugin):
    """Serve the OpenAPI document as JSON after `complete_openapi` has added what the handlers check by hand.

    Litestar builds the document once per app and passes the same cached
    dict on every request, so it is completed on the first request only.
    """

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if "ErrorBody" not in openapi_schema.get("components", {}).get("schemas", {}):
            settings = getattr(request.app.state, "settings", None)
            limit = settings.max_batch_events if settings is not None else None
            complete_openapi(openapi_schema, _public_paths(request.app), limit)
        return super().render(request, openapi_schema)
