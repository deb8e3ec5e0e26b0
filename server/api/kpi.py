"""GET /v1/kpi: KPI figures of a window, computed by `compute_kpis` over the projected order histories."""

from __future__ import annotations

import datetime as dt

import msgspec
import structlog
from litestar import Request, get

from ..kpi import GroupBy, KpiGroup, compute_kpis
from ..kpi_projection.asset_models import asset_documents, order_models
from ..kpi_projection.projector import kpi_history
from ..kpi_projection.rows import KPI_EVENT_TYPES, HistoryWindow, ProjectorLag, recorded_event
from ..kpi_projection.sla_flags import sla_flags
from ..sla.contracts import PolicyCatalog
from .context import CurrentActor, check_query_names, enum_query, int_query, store_of
from .errors import ApiError, InvalidField

log = structlog.get_logger("csdp.kpi")

# Maximum repeat-visit window in days, because it bounds the extra orders a request loads.
MAX_REPEAT_WINDOW_DAYS = 3650


class ProjectionInvalid(ApiError):
    status_code = 500
    error = "projection_invalid"


class ProjectorStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Position of the KPI projector against the log when the figures were read.

    `positions_behind` counts the accepted events not yet in the figures.
    `seconds_since_checkpoint_event` is the age of the last event applied
    (by its `recorded_at`), None before the first one.
    """

    head_position: int
    checkpoint_position: int
    positions_behind: int
    checkpoint_recorded_at: dt.datetime | None
    seconds_since_checkpoint_event: float | None
    running: bool


class KpiResponse(msgspec.Struct, frozen=True, kw_only=True):
    window_start: dt.datetime
    window_end: dt.datetime
    group_by: str
    repeat_window_days: int
    groups: list[KpiGroup]
    projector: ProjectorStatus


def instant_query(request: Request, name: str) -> dt.datetime:
    """Read a required ISO 8601 instant with a UTC offset, raising InvalidField naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        raise InvalidField(f"query parameter {name} is required: an ISO 8601 instant with a UTC offset", field=name)
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidField(
            f"query parameter {name} is not an ISO 8601 instant; use a form like 2024-05-01T00:00:00Z"
            " (a + in the offset must be sent as %2B)",
            field=name,
            value=raw,
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidField(
            f"query parameter {name} has no UTC offset; add Z or an offset such as +02:00", field=name, value=raw
        )
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00:00+00:07 is a valid ISO 8601 instant, but it lies before year 1 in UTC.
        raise InvalidField(
            f"query parameter {name} falls outside the years 1 to 9999 in UTC", field=name, value=raw
        ) from None


def projector_status(lag: ProjectorLag, running: bool, now: dt.datetime) -> ProjectorStatus:
    age = None
    if lag.checkpoint_recorded_at is not None:
        age = max((now - lag.checkpoint_recorded_at).total_seconds(), 0.0)
    return ProjectorStatus(
        head_position=lag.head_position,
        checkpoint_position=lag.checkpoint_position,
        positions_behind=max(lag.head_position - lag.checkpoint_position, 0),
        checkpoint_recorded_at=lag.checkpoint_recorded_at,
        seconds_since_checkpoint_event=age,
        running=running,
    )


@get("/v1/kpi", name="kpi.get")
async def get_kpi(request: Request, actor: CurrentActor) -> KpiResponse:
    """Compute every KPI per group for [from, to) from the order histories the KPI projector has applied."""
    check_query_names(request, {"from", "to", "group_by", "repeat_window_days"})
    start = instant_query(request, "from")
    end = instant_query(request, "to")
    if start >= end:
        raise InvalidField(
            f"query parameter from must be before to, got from={start.isoformat()} and to={end.isoformat()}",
            field="from",
            value=request.query_params.get("from"),
        )
    group_by = enum_query(request, "group_by", GroupBy)
    if group_by is None:
        raise InvalidField(
            "query parameter group_by is required: engineer, asset, contract, day, component or asset_model",
            field="group_by",
        )
    repeat_days = int_query(request, "repeat_window_days", 30, minimum=1, maximum=MAX_REPEAT_WINDOW_DAYS)

    history = kpi_history(store_of(request))
    # The lag is read first, so the figures contain at least the events up to this checkpoint.
    lag = await history.lag()
    try:
        repeat_end = end + dt.timedelta(days=repeat_days)
    except OverflowError:
        raise InvalidField(
            "query parameter to plus repeat_window_days lies after year 9999", field="to", value=request.query_params.get("to")
        ) from None
    rows = await history.window_rows(HistoryWindow(start=start, end=end, repeat_end=repeat_end))
    policies = await PolicyCatalog.load(store_of(request))
    now = dt.datetime.now(dt.timezone.utc)
    met = sla_flags(rows, policies, window_start=start, window_end=end, now=now)
    models = None
    if group_by == GroupBy.ASSET_MODEL.value:
        models = order_models(rows, await asset_documents(store_of(request)))
    try:
        report = compute_kpis(
            [recorded_event(row) for row in rows if row.type in KPI_EVENT_TYPES],
            window_start=start,
            window_end=end,
            group_by=group_by,
            repeat_window_days=repeat_days,
            order_models=models,
            sla_met=met,
        )
    except ValueError as exc:
        # The parameters were checked above, so this is a history the engine cannot replay.
        log.error("kpi_history_invalid", error=str(exc), window_start=start.isoformat(), window_end=end.isoformat())
        raise ProjectionInvalid(
            f"the KPI history cannot be replayed: {exc}; delete the rows of kpi_order_history and its"
            " projector_checkpoints row so that the projector rebuilds it from the log"
        ) from None

    projector = getattr(request.app.state, "kpi_projector", None)
    running = projector is not None and projector.running
    return KpiResponse(
        window_start=report.window_start,
        window_end=report.window_end,
        group_by=report.group_by,
        repeat_window_days=report.repeat_window_days,
        groups=report.groups,
        projector=projector_status(lag, running, now),
    )
