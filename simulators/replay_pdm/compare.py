"""Figures read from GET /v1/kpi and their comparison with the figures computed from the log."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

GROUPINGS = ("asset", "component", "asset_model", "day")


def wait_for_projector(manager: httpx.Client, start: dt.datetime, end: dt.datetime, timeout: float = 120.0) -> None:
    """Wait until the KPI projector has applied every event of the log, raising TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        report = fetch_kpi(manager, start, end, "day")
        behind = report["projector"]["positions_behind"]
        if behind == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the KPI projector is still {behind} events behind after {timeout} s")
        time.sleep(0.5)


def fetch_kpi(manager: httpx.Client, start: dt.datetime, end: dt.datetime, group_by: str) -> dict[str, Any]:
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by}
    response = manager.get("/v1/kpi", params=params)
    if response.status_code != 200:
        raise RuntimeError(f"GET /v1/kpi?group_by={group_by} returned HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


def product_figures(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, object]]:
    """Extract from the KPI reports the figures that `expected_figures` computes from the log."""

    def failures(group_by: str) -> dict[str, int]:
        return {
            str(group["key"]): group["failures"]
            for group in reports[group_by]["groups"]
            if group["failures"]
        }

    mtbf = {
        str(group["key"]): {
            "count": group["time_between_failures"]["count"],
            "total_seconds": group["time_between_failures"]["total_seconds"],
            "mean_seconds": group["time_between_failures"]["mean_seconds"],
        }
        for group in reports["asset_model"]["groups"]
        if group["time_between_failures"]["count"]
    }
    return {
        "failures_per_machine": dict(sorted(failures("asset").items())),
        "failures_per_component": dict(sorted(failures("component").items())),
        "failures_per_model": dict(sorted(failures("asset_model").items())),
        "time_between_failures_per_model": dict(sorted(mtbf.items())),
    }


def comparison_rows(product: dict[str, dict[str, object]], expected: dict[str, dict[str, object]]) -> list[dict[str, object]]:
    """Return one row per figure and key with both values and whether they are equal; a missing side is None."""
    rows = []
    for figure in expected:
        keys = sorted(set(product.get(figure, {})) | set(expected[figure]))
        for key in keys:
            from_product = product.get(figure, {}).get(key)
            from_file = expected[figure].get(key)
            rows.append(
                {
                    "figure": figure,
                    "key": key,
                    "product": from_product,
                    "file": from_file,
                    "equal": from_product == from_file,
                }
            )
    return rows
