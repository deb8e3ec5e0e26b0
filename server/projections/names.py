"""The projections that `csdp projections` rebuilds and verifies."""

from __future__ import annotations

from collections.abc import Iterable

WORK_ORDERS_CURRENT = "work_orders_current"
WORK_ORDER_TIMELINE = "work_order_timeline"
EVENT_AUDIENCE = "event_audience"
# The KPI projector's table, rebuilt from the accepted events; a rebuild also moves the projector's checkpoint.
KPI_ORDER_HISTORY = "kpi_order_history"
# Projections of `catalog_events`, one table per catalog entity.
CATALOG_PROJECTIONS = ("engineers", "sites", "assets", "contracts")

# In the order the rebuild replaces them.
PROJECTIONS = (WORK_ORDERS_CURRENT, WORK_ORDER_TIMELINE, EVENT_AUDIENCE, KPI_ORDER_HISTORY, *CATALOG_PROJECTIONS)


class UnknownProjection(ValueError):
    """A projection name that is not one of `PROJECTIONS`."""


def select_projections(names: Iterable[str]) -> tuple[str, ...]:
    """Return the requested projections in rebuild order, all of them when `names` is empty."""
    requested = list(names)
    unknown = [name for name in requested if name not in PROJECTIONS]
    if unknown:
        raise UnknownProjection(
            f"unknown projection {', '.join(repr(name) for name in unknown)}; valid names: {', '.join(PROJECTIONS)}"
        )
    if not requested:
        return PROJECTIONS
    return tuple(name for name in PROJECTIONS if name in requested)
