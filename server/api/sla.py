"""SLA endpoints: one order's clocks, and the open orders at risk or breached."""

from __future__ import annotations

import datetime as dt

from litestar import Request, get
from litestar.params import FromPath

from ..sla.contracts import PolicyCatalog
from ..sla.view import AtRiskItem, AtRiskPage, SlaView, at_risk_items, evaluate_order, sla_view
from ..store import decode_cursor, encode_cursor
from ..store.sla_reads import list_open_work_orders
from .context import CurrentActor, check_query_names, int_query, store_of
from .errors import InvalidField
from .queries import visible_order


@get("/v1/work-orders/{work_order_id:str}/sla", name="sla.get")
async def get_work_order_sla(request: Request, actor: CurrentActor, work_order_id: FromPath[str]) -> SlaView:
    """Evaluate the order's SLA now from its accepted events and its contract's policy."""
    check_query_names(request, set())
    state = await visible_order(request, actor, work_order_id)
    store = store_of(request)
    now = dt.datetime.now(dt.UTC)
    order = await evaluate_order(store, state, await PolicyCatalog.load(store), now)
    return sla_view(order, now)


@get("/v1/sla/at-risk", name="sla.at_risk")
async def list_at_risk(request: Request, actor: CurrentActor) -> AtRiskPage:
    """List the running clocks of open orders that are at risk or breached, by due instant, one page at a time."""
    check_query_names(request, {"cursor", "limit"})
    limit = int_query(request, "limit", 100, minimum=1, maximum=1000)
    after = _at_risk_cursor(request)
    store = store_of(request)
    now = dt.datetime.now(dt.UTC)
    catalog = await PolicyCatalog.load(store)
    # NOTE: every call evaluates every open order with a contract, because the
    # states depend on `now`; there is no stored at-risk projection to page.
    items: list[AtRiskItem] = []
    for state in await list_open_work_orders(store):
        if state.contract_id is not None:
            items.extend(at_risk_items(await evaluate_order(store, state, catalog, now)))
    items.sort(key=_sort_key)
    if after is not None:
        items = [item for item in items if _sort_key(item) > after]
    page = items[:limit]
    next_cursor = None
    if len(items) > limit:
        last = _sort_key(page[-1])
        next_cursor = encode_cursor(f"{last[0]}|{last[1]}|{last[2]}")
    return AtRiskPage(evaluated_at=now, items=page, next_cursor=next_cursor)


def _sort_key(item: AtRiskItem) -> tuple[str, str, str]:
    # ISO 8601 UTC instants with microseconds sort as text in time order.
    return (item.due_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), item.work_order_id, item.clock)


def _at_risk_cursor(request: Request) -> tuple[str, str, str] | None:
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    try:
        due_at, work_order_id, clock = decode_cursor(raw).split("|", 2)
        dt.datetime.strptime(due_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, UnicodeDecodeError):
        raise InvalidField(
            "query parameter cursor is not a cursor returned by this server", field="cursor", value=raw
        ) from None
    return (due_at, work_order_id, clock)
