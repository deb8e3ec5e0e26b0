"""Query side: work orders, timelines and the device pull feed."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath

from shared_schema import Actor, ChangesPage, Priority, TimelineEntry, WorkOrderPage, WorkOrderState, WorkOrderStatus

from .context import CurrentActor, check_query_names, cursor_query, engineer_scope, enum_query, int_query, store_of
from .errors import Forbidden, NotFound
from .reset import check_cursor, epoch_headers, remember_position


@get("/v1/work-orders", name="work_orders.list")
async def list_work_orders(request: Request, actor: CurrentActor) -> WorkOrderPage:
    """List orders sorted by id, filtered by `status`, `engineer_id` and `priority`, one page at a time."""
    check_query_names(request, {"status", "engineer_id", "priority", "cursor", "limit"})
    engineer_id = request.query_params.get("engineer_id")
    scope = engineer_scope(actor)
    if scope is not None:
        if engineer_id is not None and engineer_id != scope:
            raise Forbidden(
                "engineers may list only their own orders; leave engineer_id out or use your own id",
                field="engineer_id",
                value=engineer_id,
                reason="not_assigned",
            )
        engineer_id = scope
    items, next_cursor = await store_of(request).list_work_orders(
        status=enum_query(request, "status", WorkOrderStatus),
        engineer_id=engineer_id,
        priority=enum_query(request, "priority", Priority),
        after=cursor_query(request),
        limit=int_query(request, "limit", 100, minimum=1, maximum=1000),
    )
    return WorkOrderPage(items=items, next_cursor=next_cursor)


async def visible_order(request: Request, actor: Actor, work_order_id: str) -> WorkOrderState:
    # No stored id contains NUL, and PostgreSQL cannot even compare text with it.
    state = None if "\x00" in work_order_id else await store_of(request).get_work_order(work_order_id)
    scope = engineer_scope(actor)
    # An engineer gets the same 403 for an order of someone else as for a missing
    # one, so order ids cannot be probed.
    if scope is not None and (state is None or state.engineer_id != scope):
        raise Forbidden(
            f"work order {work_order_id!r} is not assigned to engineer {scope}",
            field="work_order_id",
            value=work_order_id,
            reason="not_assigned",
        )
    if state is None:
        raise NotFound(f"work order {work_order_id!r} was not found", field="work_order_id", value=work_order_id)
    return state


@get("/v1/work-orders/{work_order_id:str}", name="work_orders.get")
async def get_work_order(request: Request, actor: CurrentActor, work_order_id: FromPath[str]) -> WorkOrderState:
    check_query_names(request, set())
    return await visible_order(request, actor, work_order_id)


@get("/v1/work-orders/{work_order_id:str}/timeline", name="work_orders.timeline")
async def get_timeline(request: Request, actor: CurrentActor, work_order_id: FromPath[str]) -> list[TimelineEntry]:
    """Accepted events in stream order, with rejected and review decisions between them."""
    check_query_names(request, set())
    await visible_order(request, actor, work_order_id)
    return await store_of(request).timeline(work_order_id)


@get("/v1/sync/changes", name="sync.changes")
async def get_changes(request: Request, actor: CurrentActor) -> Response[ChangesPage]:
    """Accepted events after the `since` cursor that the caller may see, in global order."""
    check_query_names(request, {"since", "limit"})
    since = int_query(request, "since", 0, minimum=0)
    limit = int_query(request, "limit", 500, minimum=1, maximum=5000)
    await check_cursor(request, since, actor.subject, field="since")
    page = await store_of(request).changes_since(since, engineer_id=engineer_scope(actor), limit=limit)
    remember_position(request, int(page.next_cursor))
    return Response(page, headers=await epoch_headers(request))
