"""The audit trail: every decision on a proposed event, and every denied request.

Decisions are already durable, one row per proposal with the subject, role,
device and correlation id, so the audit reads them where they are instead of
writing each one twice. Requests denied before any event was decided
(authentication, RBAC, rate limit, a malformed command) go to `denied_requests`.
Accepted reference data changes are the rows of `catalog_events`. All three
are read through one query, ordered by time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from .cursors import decode_cursor, encode_cursor

Outcome = Literal["ACCEPTED", "REJECTED", "NEEDS_REVIEW", "DENIED"]
OUTCOMES: tuple[str, ...] = ("ACCEPTED", "REJECTED", "NEEDS_REVIEW", "DENIED")
# Row ids are signed 64-bit integers in both stores.
MAX_ROW_ID = 2**63 - 1


class DeniedRequest(msgspec.Struct, kw_only=True, frozen=True):
    """A request denied before any event was decided."""

    denied_at: dt.datetime
    subject: str | None
    subject_verified: bool
    role: str | None
    device_id: str | None
    correlation_id: str | None
    method: str
    path: str
    status_code: int
    reason: str
    message: str


class AuditEntry(msgspec.Struct, kw_only=True):
    """One line of `GET /v1/audit`.

    `kind` is "decision" for a proposed event, "denied_request" for a denied
    request and "catalog_change" for a recorded catalog event, whose
    `event_type`, `entity` and `entity_id` name the change. `subject_verified` is false when the subject comes from a token
    whose signature or claims did not check out.
    """

    kind: Literal["decision", "denied_request", "catalog_change"]
    at: dt.datetime
    subject: str | None
    subject_verified: bool
    role: str | None
    device_id: str | None
    correlation_id: str | None
    outcome: Outcome
    reason: str
    message: str
    work_order_id: str | None = None
    event_type: str | None = None
    client_event_id: str | None = None
    method: str | None = None
    path: str | None = None
    status_code: int | None = None
    entity: str | None = None
    entity_id: str | None = None


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEntry]
    next_cursor: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Filters of `GET /v1/audit`; None leaves a filter out. `until` is exclusive."""

    subject: str | None = None
    outcome: str | None = None
    reason: str | None = None
    work_order_id: str | None = None
    correlation_id: str | None = None
    device_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    after: tuple[str, str, int] | None = None
    limit: int = 100


def audit_select(*, true: str, text_of: Callable[[str], str]) -> str:
    """Build the union of decisions, denied requests and catalog events with the columns of `AuditEntry`, in one dialect."""
    return (
        "SELECT 'decision' AS kind, decided_at AS at, decision_id AS id, subject, "
        f"{true} AS verified, actor_role AS role, device_id, correlation_id, status AS outcome, "
        f"reason_code AS reason, work_order_id, type AS event_type, {text_of('client_event_id')} AS client_event_id, "
        "CAST(NULL AS TEXT) AS method, CAST(NULL AS TEXT) AS path, CAST(NULL AS INTEGER) AS status_code, "
        f"{text_of('decision')} AS detail, CAST(NULL AS TEXT) AS entity, CAST(NULL AS TEXT) AS entity_id FROM decisions "
        "UNION ALL "
        "SELECT 'denied_request', denied_at, denial_id, subject, subject_verified, role, device_id, correlation_id, "
        "'DENIED', reason, NULL, NULL, NULL, method, path, status_code, message, NULL, NULL FROM denied_requests "
        "UNION ALL "
        f"SELECT 'catalog_change', recorded_at, id, actor, {true}, actor_role, device_id, correlation_id, "
        "'ACCEPTED', 'applied', NULL, type, NULL, NULL, NULL, NULL, type || ' ' || entity || ' ' || entity_id, "
        "entity, entity_id FROM catalog_events"
    )


def audit_where(query: AuditQuery, placeholder: Callable[[int], str], instant: Callable[[Any], Any]) -> tuple[str, list[Any]]:
    """Build the WHERE clause over the union; `instant` converts a time to the driver's parameter."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        marks = []
        for value in values:
            params.append(value)
            marks.append(placeholder(len(params)))
        clauses.append(sql.format(*marks))

    for column, value in (
        ("subject", query.subject),
        ("outcome", query.outcome),
        ("reason", query.reason),
        ("work_order_id", query.work_order_id),
        ("correlation_id", query.correlation_id),
        ("device_id", query.device_id),
    ):
        if value is not None:
            add(f"{column} = {{}}", value)
    if query.since is not None:
        add("at >= {}", instant(query.since))
    if query.until is not None:
        add("at < {}", instant(query.until))
    if query.after is not None:
        at, kind, row_id = query.after
        add("(at, kind, id) > ({}, {}, {})", instant(dt.datetime.fromisoformat(at)), kind, row_id)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def audit_entry(row: Any) -> AuditEntry:
    """Turn a row of `audit_select` (as a mapping or a tuple in its column order) into an entry."""
    kind, at, _, subject, verified, role, device_id, correlation_id, outcome, reason = row[:10]
    work_order_id, event_type, client_event_id, method, path, status_code, detail, entity, entity_id = row[10:19]
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if kind == "decision":
        message = json.loads(detail).get("message", "")
    else:
        message = detail
    return AuditEntry(
        kind=kind,
        at=at,
        subject=subject,
        subject_verified=bool(verified),
        role=role,
        device_id=device_id,
        correlation_id=correlation_id,
        outcome=outcome,
        reason=reason,
        message=message,
        work_order_id=work_order_id,
        event_type=event_type,
        client_event_id=str(client_event_id) if client_event_id is not None else None,
        method=method,
        path=path,
        status_code=status_code,
        entity=entity,
        entity_id=entity_id,
    )


def audit_page(rows: list[Any], limit: int) -> AuditPage:
    """Cut `limit + 1` rows to a page and make the cursor of the next one."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        kind, at, row_id = rows[-1][0], rows[-1][1], rows[-1][2]
        at_text = at if isinstance(at, str) else at.isoformat()
        next_cursor = encode_cursor(json.dumps([at_text, kind, row_id]))
    return AuditPage(items=[audit_entry(row) for row in rows], next_cursor=next_cursor)


def decode_audit_cursor(cursor: str) -> tuple[str, str, int]:
    """Decode a cursor made by `audit_page`, raising ValueError for anything else."""
    value = json.loads(decode_cursor(cursor))
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], str)
        or value[1] not in ("decision", "denied_request", "catalog_change")
        or type(value[2]) is not int
        or not 0 <= value[2] <= MAX_ROW_ID
    ):
        raise ValueError("not an audit cursor")
    at = dt.datetime.fromisoformat(value[0])
    if at.tzinfo is None:
        raise ValueError("the cursor's time has no offset")
    try:
        at.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError("the cursor's time is out of range") from None
    return value[0], value[1], value[2]
