"""Failure counts and times between failures, taken from the corrective orders of the log.

`docs/kpi.md` defines both figures. A failure is a corrective order that is
not cancelled, counted at its creation. Failures of one asset at the same
instant are one stop of the machine. So a time between failures is the gap
between two distinct creation instants on the same asset. When the figures
are grouped by component, the gaps are taken per asset and component.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from shared_schema import WorkOrderStatus

from .history import OrderHistory

@dataclasses.dataclass(frozen=True)
class Failure:
    """One failure attributed to the window: the order, its creation time and, after the first, the gap before it."""

    order: OrderHistory
    time: dt.datetime
    gap: dt.timedelta | None


def failures_in_window(
    orders: Iterable[OrderHistory], window_start: dt.datetime, window_end: dt.datetime, per_component: bool
) -> list[Failure]:
    """Return the failures created in [window_start, window_end), each with its gap to the previous failure.

    Only failures inside the window form gaps, so the first failure of each
    asset in the window has none. A gap therefore never depends on events
    outside the window, and the gaps of adjacent windows do not add up to
    those of their union.
    """
    sequences: dict[tuple[str | None, str | None], list[OrderHistory]] = defaultdict(list)
    for order in orders:
        if not order.corrective or order.status is WorkOrderStatus.CANCELLED:
            continue
        if not window_start <= order.created_at < window_end:
            continue
        component = order.component if per_component else None
        sequences[(order.asset_id, component)].append(order)

    failures: list[Failure] = []
    for (asset_id, _component), sequence in sequences.items():
        sequence.sort(key=lambda order: (order.created_at, order.work_order_id))
        previous: dt.datetime | None = None
        for order in sequence:
            gap = None
            # Orders without an asset form no sequence; equal instants are one stop of the machine.
            if asset_id is not None and previous is not None and order.created_at > previous:
                gap = order.created_at - previous
            failures.append(Failure(order=order, time=order.created_at, gap=gap))
            previous = order.created_at
    return failures
