"""Model of each order's asset when the order was created, for `group_by=asset_model` of GET /v1/kpi.

The model comes from the asset's configuration snapshot valid at the
order's creation, under the key `model`. When no snapshot covers that
instant, or the snapshot has no text `model`, the asset's registered
`model` is used. Orders without an asset, or on an asset missing from the
catalog, get no model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from ..store import Store
from ..store.catalog import catalog_of
from .rows import HistoryRow

# Asset documents are read from the catalog in pages of this many.
_ASSET_PAGE = 1000


async def asset_documents(store: Store) -> dict[str, dict[str, Any]]:
    """Return every asset document of the catalog, keyed by asset id."""
    catalog = catalog_of(store)
    documents: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        page = await catalog.page("asset", after=after, limit=_ASSET_PAGE)
        for document in page[:_ASSET_PAGE]:
            documents[str(document["asset_id"])] = document
        if len(page) <= _ASSET_PAGE:
            return documents
        after = str(page[_ASSET_PAGE - 1]["asset_id"])


def model_at(document: dict[str, Any], instant: dt.datetime) -> str:
    """Return the asset's model at `instant`: the covering snapshot's `model`, else the registered one."""
    for snapshot in document.get("configurations", []):
        starts = dt.datetime.fromisoformat(snapshot["valid_from"])
        ends = snapshot.get("valid_to")
        if starts <= instant and (ends is None or instant < dt.datetime.fromisoformat(ends)):
            model = snapshot["configuration"].get("model")
            if isinstance(model, str) and model:
                return model
            break
    return str(document["model"])


def order_models(rows: Iterable[HistoryRow], assets: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Map each order created on a catalog asset to the asset's model at the order's creation."""
    models: dict[str, str] = {}
    for row in rows:
        if row.type == "created" and row.asset_id is not None and row.asset_id in assets:
            models[row.work_order_id] = model_at(assets[row.asset_id], row.effective_time)
    return models
