"""HTTP error family and the handlers that turn exceptions into JSON bodies.

Every client mistake becomes a 4xx whose body names the field and the value
at fault. Only a failure of the server or its database becomes a 5xx.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from shared_schema.protocol import SIGNAL_STATUS, SyncSignal

from ..store.errors import InvalidValue, StoreError, StoreUnavailable

log = structlog.get_logger("csdp.api")

_PATH_RE = re.compile(r"at `(\$[^`]*)`")
_MISSING_RE = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN_RE = re.compile(r"unknown field `([^`]+)`")
# msgspec quotes the rejected value in some messages (an unknown tag, for one), however long it is.
_LONG_QUOTED_RE = re.compile(r"'([^']{200})[^']+'")
MISSING: Any = object()
"""Marks an absent `value`, so that a JSON null can still be reported as the value at fault."""

# Envelope fields that only the server sets. A body that sends one gets this hint in the error message.
_SERVER_SET_FIELDS = {
    "actor": "the server takes the actor from the bearer token",
    "actor_role": "the server takes the role from the bearer token",
    "event_id": "the server assigns it on acceptance",
    "global_position": "the server assigns it on acceptance",
    "stream_version": "the server assigns it on acceptance",
    "recorded_at": "the server sets it from its own clock",
    "effective_time": "the server derives it from occurred_at",
}


class ApiError(Exception):
    """An error sent as a JSON body with `status_code`."""

    status_code = 400
    error = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, value: Any = MISSING, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.value is not MISSING:
            body["value"] = self.value
        body.update(self.extra)
        return body


class MalformedRequest(ApiError):
    status_code = 400
    error = "malformed_request"


class InvalidField(ApiError):
    status_code = 422
    error = "invalid_field"


class Unauthenticated(ApiError):
    status_code = 401
    error = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Forbidden(ApiError):
    status_code = 403
    error = "forbidden"


class NotFound(ApiError):
    status_code = 404
    error = "not_found"


class PayloadTooLarge(ApiError):
    status_code = 413
    error = "payload_too_large"


class SignalError(ApiError):
    """A request-level signal from `shared_schema.protocol`, with its status and a `reason` in the body."""

    def __init__(self, signal: SyncSignal, message: str, **extra: Any) -> None:
        super().__init__(message, reason=signal.value, **extra)
        self.status_code = SIGNAL_STATUS[signal]
        self.error = signal.value


class RateLimited(ApiError):
    status_code = 429
    error = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **extra: Any) -> None:
        super().__init__(message, reason="rate_limited", retry_after=retry_after, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(int(self.retry_after))}


class ServiceUnavailable(ApiError):
    status_code = 503
    error = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1, detail: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after
        if detail:
            log.warning("service_unavailable", message=message, detail=detail)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(int(self.retry_after))}


def validation_error(exc: msgspec.ValidationError, document: Any) -> InvalidField:
    """Build a 422 from a msgspec validation error, adding the field path and the value found there.

    `document` is the body decoded without a schema, or MISSING when that
    failed too, and then the error body has no `value`.
    """
    text = _LONG_QUOTED_RE.sub(lambda match: f"'{match.group(1)}...'", str(exc))
    path_match = _PATH_RE.search(text)
    path = path_match.group(1) if path_match else "$"
    missing = _MISSING_RE.search(text)
    if missing:
        return InvalidField(f"{text}; add the field", field=f"{path}.{missing.group(1)}")
    unknown = _UNKNOWN_RE.search(text)
    if unknown:
        name = unknown.group(1)
        hint = _SERVER_SET_FIELDS.get(name)
        message = f"{text}; {hint}, so remove the field" if hint else f"{text}; remove the field"
        field = f"{path}.{name}"
        return InvalidField(message, field=field, value=value_at(document, field))
    if document is MISSING:
        return InvalidField(text, field=path)
    return InvalidField(text, field=path, value=value_at(document, path))


def value_at(document: Any, path: str) -> Any:
    """Follow a msgspec path such as `$.events[2].payload.x`; a missing step yields None."""
    if document is MISSING:
        return None
    current = document
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        try:
            current = current[int(index)] if index else current[name]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(current, str) and len(current) > 200:
        return current[:200] + "..."
    if isinstance(current, (dict, list)):
        return f"<{type(current).__name__} of {len(current)} items>"
    return current


def _json_response(request: Request, status: int, body: dict[str, Any]) -> Response:
    correlation_id = request.scope.get("state", {}).get("correlation_id")
    if correlation_id:
        body["correlation_id"] = correlation_id
    return Response(content=body, status_code=status, media_type="application/json")


def handle_api_error(request: Request, exc: ApiError) -> Response:
    body = exc.body()
    _audit_denied_request(request, exc.status_code, str(body.get("reason") or exc.error), exc.message)
    response = _json_response(request, exc.status_code, body)
    response.headers.update(exc.headers())
    return response


def _audit_denied_request(request: Request, status_code: int, reason: str, message: str) -> None:
    """Queue a denied request for the audit: any 401, 403 or 429, and any rejected command (POST)."""
    if status_code not in (401, 403, 429) and not (request.method == "POST" and 400 <= status_code < 500):
        return
    recorder = getattr(request.app.state, "denied_requests", None)
    if recorder is None:
        return
    from ..security.audit import denied_request_from

    denied = denied_request_from(request, status_code, reason, message)
    log.info(
        "request_denied",
        status=status_code,
        reason=reason,
        subject=denied.subject,
        subject_verified=denied.subject_verified,
        path=denied.path,
        correlation_id=denied.correlation_id,
    )
    recorder.record(denied)


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    """Wrap Litestar's own errors (unknown route, bad path parameter, wrong method) in the same body shape."""
    extra: dict[str, Any] = {}
    message = exc.detail
    if isinstance(exc, NotFoundException):
        error = "not_found"
    elif isinstance(exc, ValidationException):
        error = "invalid_field"
    elif isinstance(exc, RequestEntityTooLarge):
        # Litestar raises this while reading a body over `request_max_body_size`.
        error = PayloadTooLarge.error
        extra["limit"] = request.app.state.settings.max_body_bytes
        message = (
            f"the request body is larger than the limit of {extra['limit']} bytes; "
            "split the batch, or send a blob in smaller chunks"
        )
    else:
        error = "http_error"
    body: dict[str, Any] = {"error": error, "message": message, **extra}
    if exc.extra:
        body["details"] = exc.extra
    _audit_denied_request(request, exc.status_code, error, str(message))
    return _json_response(request, exc.status_code, body)


def handle_store_error(request: Request, exc: StoreError) -> Response:
    """Convert a store failure into a response without connection details, which go to the log instead."""
    log.error(
        "store_error",
        error=str(exc),
        method=request.method,
        path=request.url.path,
        subject=_subject(request),
        correlation_id=_correlation(request),
    )
    if isinstance(exc, InvalidValue):
        return _json_response(request, 422, {"error": "invalid_field", "message": f"the database rejected a value: {exc}"})
    if isinstance(exc, StoreUnavailable):
        body = {"error": "service_unavailable", "message": "the database is unavailable; retry the request"}
        response = _json_response(request, 503, body)
        response.headers["Retry-After"] = "1"
        return response
    body = {"error": "internal_error", "message": "the database failed to process the request; it was logged"}
    return _json_response(request, 500, body)


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception(
        "unhandled_error",
        method=request.method,
        path=request.url.path,
        subject=_subject(request),
        correlation_id=_correlation(request),
    )
    body = {"error": "internal_error", "message": "the server failed to process the request; it was logged"}
    return _json_response(request, 500, body)


def _subject(request: Request) -> str | None:
    return getattr(request.scope.get("state", {}).get("actor"), "subject", None)


def _correlation(request: Request) -> str | None:
    return request.scope.get("state", {}).get("correlation_id")


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    StoreError: handle_store_error,
    Exception: handle_unexpected,
}
