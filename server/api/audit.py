"""`GET /v1/audit`: decisions on proposed events and denied requests, for managers and admins."""

from __future__ import annotations

import datetime as dt

from litestar import Request, get

from ..store.audit import OUTCOMES, AuditPage, AuditQuery, decode_audit_cursor
from .context import CurrentActor, check_query_names, int_query, store_of
from .errors import InvalidField

_FILTERS = ("subject", "outcome", "reason", "work_order_id", "correlation_id", "device_id")


def instant_query(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidField(
            f"query parameter {name} must be an ISO 8601 instant with an offset, such as 2026-12-04T08:00:00+00:00",
            field=name,
            value=raw,
        )
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise InvalidField(f"query parameter {name} falls outside the years 1 to 9999 in UTC", field=name, value=raw) from None


@get("/v1/audit", name="audit.list")
async def list_audit(request: Request, actor: CurrentActor) -> AuditPage:
    """Decisions and denied requests in time order, filtered, one page at a time."""
    check_query_names(request, {*_FILTERS, "from", "to", "cursor", "limit"})
    filters = {name: request.query_params.get(name) for name in _FILTERS}
    if filters["outcome"] is not None and filters["outcome"] not in OUTCOMES:
        raise InvalidField(
            f"query parameter outcome must be one of {', '.join(OUTCOMES)}", field="outcome", value=filters["outcome"]
        )
    after = None
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor is not None:
        try:
            after = decode_audit_cursor(raw_cursor)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidField(
                "query parameter cursor is not a cursor returned by this endpoint", field="cursor", value=raw_cursor
            ) from None
    query = AuditQuery(
        **filters,
        since=instant_query(request, "from"),
        until=instant_query(request, "to"),
        after=after,
        limit=int_query(request, "limit", 100, minimum=1, maximum=1000),
    )
    return await store_of(request).audit(query)
