"""The review queue: NEEDS_REVIEW decisions that no accepted `review_resolved` event names yet.

The queue is computed on read from the log (the `decisions` and `events`
tables), so it has no table of its own to rebuild or verify. A held event is
named by its proposer's subject and client_event_id, and a resolution is an
accepted `review_resolved` event on the held event's order whose payload
carries that pair. Both stores build their SQL from the pieces here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from shared_schema import DecisionStatus, EventDecision, HeldReview, ProposedEvent, WorkOrderStatus
from shared_schema.payloads import ReviewResolution

from .cursors import decode_cursor, encode_cursor

Dialect = Literal["sqlite", "postgres"]
# Row ids are signed 64-bit integers in both stores.
MAX_ROW_ID = 2**63 - 1

_decode_proposal = msgspec.json.Decoder(ProposedEvent).decode
_decode_decision = msgspec.json.Decoder(EventDecision).decode


class HeldProposal(msgspec.Struct, kw_only=True):
    """The proposed event held for review, as its device sent it, with the proposer from the token."""

    client_event_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    occurred_at: dt.datetime
    base_version: int
    device_id: str
    correlation_id: str | None
    subject: str
    role: str


class ReviewItem(msgspec.Struct, kw_only=True):
    """One unresolved review: the held proposal, why it is held, and the order as it is now."""

    work_order_id: str
    proposal: HeldProposal
    reason_code: str
    message: str
    decided_at: dt.datetime
    work_order_status: WorkOrderStatus | None
    assignee: str | None


class ReviewPage(msgspec.Struct, kw_only=True):
    items: list[ReviewItem]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReviewQuery:
    """Filters of `GET /v1/reviews`, where None leaves a filter out. `subject` is the proposer's."""

    work_order_id: str | None = None
    subject: str | None = None
    reason_code: str | None = None
    after: tuple[str, int] | None = None
    limit: int = 100


def _payload_field(dialect: Dialect, name: str) -> str:
    if dialect == "sqlite":
        # The event column is JSON text stored as a BLOB, which json_extract would read as JSONB.
        return f"json_extract(CAST(r.event AS TEXT), '$.payload.{name}')"
    return f"(r.event->'payload'->>'{name}')"


def resolution_subquery(dialect: Dialect, select: str) -> str:
    """Build a subquery over the accepted `review_resolved` events that name the decision `d`.

    `select` is the column list, for example "1" for EXISTS. The payload's
    client_event_id may use any spelling that msgspec decodes as a UUID
    (upper case, no hyphens), so the comparison normalises it.
    """
    if dialect == "sqlite":
        same_id = f"lower(replace({_payload_field(dialect, 'client_event_id')}, '-', '')) = replace(d.client_event_id, '-', '')"
    else:
        same_id = f"{_payload_field(dialect, 'client_event_id')}::uuid = d.client_event_id"
    return (
        f"SELECT {select} FROM events r WHERE r.work_order_id = d.work_order_id AND r.type = 'review_resolved'"
        f" AND {_payload_field(dialect, 'subject')} = d.subject AND {same_id}"
        " ORDER BY r.stream_version LIMIT 1"
    )


def held_reviews_sql(dialect: Dialect, pair_source: str) -> str:
    """Build the lookup of the decisions named by `review_resolved` proposals, with any recorded resolution.

    `pair_source` is a table expression with columns (subject, client_event_id).
    """
    resolution = resolution_subquery(dialect, _payload_field(dialect, "resolution"))
    return (
        f"SELECT d.subject, d.client_event_id, d.work_order_id, d.status, ({resolution}) AS resolution"
        f" FROM decisions d JOIN {pair_source} ON d.subject = ref.subject AND d.client_event_id = ref.client_event_id"
    )


def held_review(row: Any) -> tuple[tuple[str, uuid.UUID], HeldReview]:
    """Turn a row of `held_reviews_sql` into the key and value that `plan_batch` takes."""
    subject, client_event_id, work_order_id, status, resolution = row
    key = (subject, client_event_id if isinstance(client_event_id, uuid.UUID) else uuid.UUID(client_event_id))
    return key, HeldReview(
        work_order_id=work_order_id,
        status=DecisionStatus(status),
        resolution=ReviewResolution(resolution) if resolution is not None else None,
    )


def review_queue_sql(
    dialect: Dialect, query: ReviewQuery, placeholder: Callable[[int], str], instant: Callable[[dt.datetime], Any]
) -> tuple[str, list[Any]]:
    """Build the query of one page of the queue, oldest decision first. The caller adds the LIMIT parameter last."""
    clauses = ["d.status = 'NEEDS_REVIEW'", f"NOT EXISTS ({resolution_subquery(dialect, '1')})"]
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        marks = []
        for value in values:
            params.append(value)
            marks.append(placeholder(len(params)))
        clauses.append(sql.format(*marks))

    if query.work_order_id is not None:
        add("d.work_order_id = {}", query.work_order_id)
    if query.subject is not None:
        add("d.subject = {}", query.subject)
    if query.reason_code is not None:
        add("d.reason_code = {}", query.reason_code)
    if query.after is not None:
        decided_at, decision_id = query.after
        add("(d.decided_at, d.decision_id) > ({}, {})", instant(dt.datetime.fromisoformat(decided_at)), decision_id)
    text = (lambda column: column) if dialect == "sqlite" else (lambda column: f"{column}::text")
    sql = (
        f"SELECT d.decision_id, d.decided_at, d.subject, d.actor_role, {text('d.proposal')}, {text('d.decision')},"
        " w.status, w.engineer_id"
        " FROM decisions d LEFT JOIN work_orders_current w ON w.work_order_id = d.work_order_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY d.decided_at, d.decision_id LIMIT {placeholder(len(params) + 1)}"
    )
    return sql, params


def _review_item(row: Any) -> ReviewItem:
    _, decided_at, subject, role, raw_proposal, raw_decision, status, engineer_id = row
    proposal = _decode_proposal(raw_proposal)
    decision = _decode_decision(raw_decision)
    if isinstance(decided_at, str):
        decided_at = dt.datetime.fromisoformat(decided_at)
    return ReviewItem(
        work_order_id=proposal.work_order_id,
        proposal=HeldProposal(
            client_event_id=proposal.client_event_id,
            type=proposal.type,
            payload=proposal.payload,
            occurred_at=proposal.occurred_at,
            base_version=proposal.base_version,
            device_id=proposal.device_id,
            correlation_id=proposal.correlation_id,
            subject=subject,
            role=role,
        ),
        reason_code=decision.reason_code.value,
        message=decision.message,
        decided_at=decided_at,
        work_order_status=WorkOrderStatus(status) if status is not None else None,
        assignee=engineer_id,
    )


def review_page(rows: list[Any], limit: int) -> ReviewPage:
    """Cut `limit + 1` rows of `review_queue_sql` to a page and make the cursor of the next one."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        decision_id, decided_at = rows[-1][0], rows[-1][1]
        decided_text = decided_at if isinstance(decided_at, str) else decided_at.isoformat()
        next_cursor = encode_cursor(json.dumps([decided_text, decision_id]))
    return ReviewPage(items=[_review_item(row) for row in rows], next_cursor=next_cursor)


def decode_review_cursor(cursor: str) -> tuple[str, int]:
    """Decode a cursor made by `review_page`, raising ValueError for anything else."""
    value = json.loads(decode_cursor(cursor))
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or type(value[1]) is not int
        or not 0 <= value[1] <= MAX_ROW_ID
    ):
        raise ValueError("not a review cursor")
    decided_at = dt.datetime.fromisoformat(value[0])
    if decided_at.tzinfo is None:
        raise ValueError("the cursor's time has no offset")
    try:
        decided_at.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError("the cursor's time is out of range") from None
    return value[0], value[1]
