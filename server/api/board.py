"""GET /v1/engineers/board: each engineer's status, current order and next planned orders."""

from __future__ import annotations

import datetime as dt

import structlog
from litestar import Request, get

from ..board.queries import read_board_inputs
from ..board.status import BoardEntry, build_board
from .context import CurrentActor, check_query_names, store_of
from .errors import ApiError

log = structlog.get_logger("csdp.board")


class CatalogInvalid(ApiError):
    status_code = 500
    error = "catalog_invalid"


@get("/v1/engineers/board", name="engineers.board")
async def get_engineer_board(request: Request, actor: CurrentActor) -> list[BoardEntry]:
    """List every engineer of the catalog or of any assignment, sorted by engineer id."""
    check_query_names(request, set())
    inputs = await read_board_inputs(store_of(request))
    try:
        return build_board(
            inputs.catalog,
            inputs.assigned_engineers,
            inputs.open_states,
            inputs.last_updates,
            dt.datetime.now(dt.timezone.utc),
        )
    except ValueError as exc:
        log.error("engineer_catalog_invalid", error=str(exc))
        raise CatalogInvalid(f"the engineer catalog contains an invalid calendar or absence: {exc}") from None
