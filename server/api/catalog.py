"""Reference data: `POST /v1/catalog` records commands, the `GET` routes read the catalog projection."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import structlog
from litestar import Request, get, post
from litestar.params import FromPath

from ..catalog.commands import MAX_COMMANDS, CatalogRequest, CommandError, check_commands
from ..catalog.fold import RecordedChange, snapshot_at
from ..store import encode_cursor
from ..store.catalog import catalog_of
from .audit import instant_query
from .context import CurrentActor, check_query_names, cursor_query, int_query, store_of
from .errors import InvalidField, MalformedRequest, NotFound, validation_error
from .events import decode_document
from .queries import visible_order

log = structlog.get_logger("csdp.catalog")
_decode_request = msgspec.json.Decoder(CatalogRequest).decode


class CatalogResult(msgspec.Struct, kw_only=True):
    recorded: list[RecordedChange]


class CatalogPage(msgspec.Struct, kw_only=True):
    items: list[dict[str, Any]]
    next_cursor: str | None


class ConfigurationSnapshot(msgspec.Struct, kw_only=True):
    asset_id: str
    valid_from: str
    valid_to: str | None
    configuration: dict[str, Any]


def parse_catalog_request(body: bytes) -> CatalogRequest:
    """Decode a request body, or raise a 4xx naming the field and value at fault."""
    if not body:
        raise MalformedRequest('the request body is empty; send {"commands": [...]}')
    try:
        return _decode_request(body)
    except msgspec.ValidationError as exc:
        document = decode_document(body)
        commands = document.get("commands") if isinstance(document, dict) else None
        if isinstance(commands, list) and len(commands) > MAX_COMMANDS:
            raise InvalidField(
                f"the request has {len(commands)} commands, more than the limit of {MAX_COMMANDS}; split it",
                field="$.commands",
                value=len(commands),
                limit=MAX_COMMANDS,
            ) from None
        raise validation_error(exc, document) from exc
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise MalformedRequest("the request body is nested too deeply to decode") from None


@post("/v1/catalog", status_code=200, name="catalog.post")
async def post_catalog(request: Request, actor: CurrentActor) -> CatalogResult:
    """Record catalog commands in one transaction. One invalid command rejects them all."""
    check_query_names(request, set())
    parsed = parse_catalog_request(await request.body())
    correlation_id = request.scope["state"].get("correlation_id")
    try:
        commands = check_commands(parsed)
        recorded = await catalog_of(store_of(request)).record(
            actor,
            commands,
            device_id=request.headers.get("x-device-id"),
            correlation_id=correlation_id,
            recorded_at=dt.datetime.now(dt.timezone.utc),
        )
    except CommandError as exc:
        raise InvalidField(exc.message, field=exc.field, value=exc.value) from None
    log.info("catalog_recorded", subject=actor.subject, correlation_id=correlation_id, commands=len(recorded))
    return CatalogResult(recorded=recorded)


async def _page(request: Request, entity: str) -> CatalogPage:
    check_query_names(request, {"cursor", "limit"})
    after = cursor_query(request)
    limit = int_query(request, "limit", 100, minimum=1, maximum=1000)
    documents = await catalog_of(store_of(request)).page(entity, after=after, limit=limit)
    next_cursor = None
    if len(documents) > limit:
        documents = documents[:limit]
        next_cursor = encode_cursor(documents[-1][f"{entity}_id"])
    return CatalogPage(items=documents, next_cursor=next_cursor)


@get("/v1/catalog/engineers", name="catalog.engineers")
async def list_engineers(request: Request, actor: CurrentActor) -> CatalogPage:
    """Engineers in id order, with calendar and absences, one page at a time."""
    return await _page(request, "engineer")


@get("/v1/catalog/sites", name="catalog.sites")
async def list_sites(request: Request, actor: CurrentActor) -> CatalogPage:
    return await _page(request, "site")


@get("/v1/catalog/assets", name="catalog.assets")
async def list_assets(request: Request, actor: CurrentActor) -> CatalogPage:
    """Assets in id order, each with its configuration snapshots."""
    return await _page(request, "asset")


@get("/v1/catalog/contracts", name="catalog.contracts")
async def list_contracts(request: Request, actor: CurrentActor) -> CatalogPage:
    """Contracts in id order, each with its SLA policy versions."""
    return await _page(request, "contract")


async def _snapshot(request: Request, asset_id: str, at: dt.datetime) -> ConfigurationSnapshot:
    document = None if "\x00" in asset_id else await catalog_of(store_of(request)).get("asset", asset_id)
    if document is None:
        raise NotFound(f"asset {asset_id!r} was not found", field="asset_id", value=asset_id)
    snapshot = snapshot_at(document, at)
    if snapshot is None:
        raise NotFound(
            f"asset {asset_id!r} has no configuration snapshot valid at {at.isoformat()}",
            field="at",
            value=at.isoformat(),
        )
    return ConfigurationSnapshot(asset_id=asset_id, **snapshot)


@get("/v1/catalog/assets/{asset_id:str}/configuration", name="catalog.asset_configuration")
async def get_asset_configuration(request: Request, actor: CurrentActor, asset_id: FromPath[str]) -> ConfigurationSnapshot:
    """Return the snapshot whose interval [valid_from, valid_to) contains `at` (default: now)."""
    check_query_names(request, {"at"})
    at = instant_query(request, "at") or dt.datetime.now(dt.timezone.utc)
    return await _snapshot(request, asset_id, at)


@get("/v1/work-orders/{work_order_id:str}/asset-configuration", name="work_orders.asset_configuration")
async def get_work_order_asset_configuration(
    request: Request, actor: CurrentActor, work_order_id: FromPath[str]
) -> ConfigurationSnapshot:
    """Return the configuration of the order's asset that was valid at the order's `created_at`."""
    check_query_names(request, set())
    state = await visible_order(request, actor, work_order_id)
    if state.asset_id is None:
        raise NotFound(f"work order {work_order_id!r} names no asset", field="asset_id", value=None)
    assert state.created_at is not None
    return await _snapshot(request, state.asset_id, state.created_at)


ROUTES = [
    post_catalog,
    list_engineers,
    list_sites,
    list_assets,
    list_contracts,
    get_asset_configuration,
    get_work_order_asset_configuration,
]
