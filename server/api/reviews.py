"""`GET /v1/reviews`: the queue of events held for review, for dispatchers, managers and admins.

A review is resolved with a `review_resolved` event through `POST /v1/events`,
so this module only reads.
"""

from __future__ import annotations

from litestar import Request, get

from shared_schema import REASON_STATUS, DecisionStatus

from ..store.reviews import ReviewPage, ReviewQuery, decode_review_cursor
from .context import CurrentActor, check_query_names, int_query, store_of
from .errors import InvalidField

REVIEW_REASONS = tuple(code.value for code, status in REASON_STATUS.items() if status is DecisionStatus.NEEDS_REVIEW)


@get("/v1/reviews", name="reviews.list")
async def list_reviews(request: Request, actor: CurrentActor) -> ReviewPage:
    """Unresolved NEEDS_REVIEW decisions, oldest first, filtered, one page at a time."""
    check_query_names(request, {"work_order_id", "subject", "reason_code", "cursor", "limit"})
    reason_code = request.query_params.get("reason_code")
    if reason_code is not None and reason_code not in REVIEW_REASONS:
        raise InvalidField(
            f"query parameter reason_code must be one of {', '.join(REVIEW_REASONS)}",
            field="reason_code",
            value=reason_code,
        )
    after = None
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor is not None:
        try:
            after = decode_review_cursor(raw_cursor)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidField(
                "query parameter cursor is not a cursor returned by this endpoint", field="cursor", value=raw_cursor
            ) from None
    query = ReviewQuery(
        work_order_id=request.query_params.get("work_order_id"),
        subject=request.query_params.get("subject"),
        reason_code=reason_code,
        after=after,
        limit=int_query(request, "limit", 100, minimum=1, maximum=1000),
    )
    return await store_of(request).list_reviews(query)
