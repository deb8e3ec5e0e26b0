"""Board rows from the engineer catalog and the current state of the orders assigned to each engineer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import msgspec

from shared_schema import WorkOrderState, WorkOrderStatus

from ..sla.calendar import Calendar, open_intervals

S = WorkOrderStatus

# Board status of each order status that puts an engineer on a job, strongest first: an engineer
# with one order in progress and another on hold is working.
ACTIVE_STATUS_ORDER = (
    (S.IN_PROGRESS, "working"),
    (S.ON_SITE, "on_site"),
    (S.EN_ROUTE, "en_route"),
    (S.ON_HOLD, "on_hold"),
)
PLANNED_STATES = (S.ASSIGNED, S.ACCEPTED)
# A far-future sort key that puts orders without a planned start after the planned ones.
_NO_PLANNED_START = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
_NEVER = dt.datetime.min.replace(tzinfo=dt.timezone.utc)

_decode_calendar = msgspec.json.Decoder(Calendar).decode


class BoardOrder(msgspec.Struct, frozen=True, kw_only=True):
    work_order_id: str
    status: str
    priority: str
    site_id: str
    asset_id: str | None
    planned_start: dt.datetime | None
    updated_at: dt.datetime | None


class BoardAbsence(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded absence of the engineer that contains the board's instant."""

    start: dt.datetime
    end: dt.datetime
    reason: str | None


class BoardEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One engineer on the board.

    `in_catalog` is False for an engineer id seen only in assignments.
    `has_calendar` is whether a working calendar decided `off_shift`.
    `absence` is the recorded absence in progress, None when there is none.
    `last_update` is the latest effective time among the events of the
    orders now assigned to the engineer, whatever their status.
    """

    engineer_id: str
    name: str | None
    in_catalog: bool
    status: str
    has_calendar: bool
    absence: BoardAbsence | None
    current_order: BoardOrder | None
    next_orders: list[BoardOrder]
    last_update: dt.datetime | None


def board_order(state: WorkOrderState) -> BoardOrder:
    return BoardOrder(
        work_order_id=state.work_order_id,
        status=state.status.value,
        priority=state.priority.value,
        site_id=state.site_id,
        asset_id=state.asset_id,
        planned_start=state.planned_start,
        updated_at=state.updated_at,
    )


def parse_calendar(engineer_id: str, raw: object) -> Calendar | None:
    """Decode an engineer's calendar column (JSON text or bytes), None when absent or empty.

    Raises ValueError naming the engineer for a calendar that does not decode.
    """
    if raw is None or raw == "" or raw == b"":
        return None
    try:
        if isinstance(raw, (str, bytes)):
            return _decode_calendar(raw)
        return msgspec.convert(raw, Calendar)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise ValueError(f"engineer {engineer_id!r} has an invalid calendar: {exc}") from exc


def on_shift(calendar: Calendar | None, now: dt.datetime) -> bool:
    """Tell whether `now` lies in an open interval of the calendar; no calendar means always on shift."""
    if calendar is None:
        return True
    return bool(open_intervals(calendar, now, now + dt.timedelta(microseconds=1)))


def current_absence(engineer_id: str, absences: object, now: dt.datetime) -> BoardAbsence | None:
    """Return the first recorded absence with start <= now < end, or None.

    Raises ValueError naming the engineer for an absence whose instants do not parse.
    """
    if not absences:
        return None
    try:
        for absence in absences:  # type: ignore[attr-defined]
            start = dt.datetime.fromisoformat(str(absence["start"]))
            end = dt.datetime.fromisoformat(str(absence["end"]))
            if start <= now < end:
                # The catalog stores an absence recorded without a reason with an empty one.
                reason = absence.get("reason")
                return BoardAbsence(start=start, end=end, reason=str(reason) if reason else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"engineer {engineer_id!r} has an invalid absence: {exc!r}") from exc
    return None


def _latest(states: list[WorkOrderState]) -> WorkOrderState:
    return max(states, key=lambda state: (state.updated_at or _NEVER, state.work_order_id))


def board_entry(
    engineer_id: str,
    catalog_row: Mapping[str, object] | None,
    states: list[WorkOrderState],
    last_update: dt.datetime | None,
    now: dt.datetime,
) -> BoardEntry:
    """Derive one engineer's board row from the orders now assigned to them."""
    calendar = parse_calendar(engineer_id, catalog_row.get("calendar")) if catalog_row else None
    absence = current_absence(engineer_id, catalog_row.get("absences"), now) if catalog_row else None
    status, current = "available", None
    for order_status, board_status in ACTIVE_STATUS_ORDER:
        matching = [state for state in states if state.status is order_status]
        if matching:
            status, current = board_status, _latest(matching)
            break
    # A recorded absence overrides the calendar. An engineer whose order is en route, on site or in
    # progress keeps that status in both cases, because the log shows the job going on.
    if status in ("available", "on_hold") and (absence is not None or not on_shift(calendar, now)):
        status = "off_shift"
    planned = sorted(
        (state for state in states if state.status in PLANNED_STATES),
        key=lambda state: (state.planned_start or _NO_PLANNED_START, state.work_order_id),
    )
    name = catalog_row.get("name") if catalog_row else None
    return BoardEntry(
        engineer_id=engineer_id,
        name=str(name) if name is not None else None,
        in_catalog=catalog_row is not None,
        status=status,
        has_calendar=calendar is not None,
        absence=absence,
        current_order=board_order(current) if current is not None else None,
        next_orders=[board_order(state) for state in planned],
        last_update=last_update,
    )


def build_board(
    catalog: Iterable[Mapping[str, object]],
    assigned_engineers: Iterable[str],
    open_states: Iterable[WorkOrderState],
    last_updates: Mapping[str, dt.datetime],
    now: dt.datetime,
) -> list[BoardEntry]:
    """Return one entry per engineer in the catalog or in `assigned_engineers`, sorted by engineer id.

    `open_states` are the orders assigned to an engineer and not yet
    completed, closed or cancelled. `last_updates` maps each engineer to the
    latest `updated_at` of every order now assigned to them.
    """
    rows = {str(row["engineer_id"]): row for row in catalog}
    by_engineer: dict[str, list[WorkOrderState]] = {}
    for state in open_states:
        if state.engineer_id is not None:
            by_engineer.setdefault(state.engineer_id, []).append(state)
    engineer_ids = sorted(set(rows) | set(assigned_engineers) | set(by_engineer))
    return [board_entry(engineer, rows.get(engineer), by_engineer.get(engineer, []), last_updates.get(engineer), now) for engineer in engineer_ids]
