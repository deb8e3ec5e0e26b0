"""The held event that a `review_resolved` proposal names, as the server found it."""

from __future__ import annotations

import msgspec

from .payloads import ReviewResolution
from .reasons import DecisionStatus


class HeldReview(msgspec.Struct, frozen=True, kw_only=True):
    """The stored decision on the named event, and the resolution already recorded for it.

    `resolution` is None while no accepted `review_resolved` event names the
    decision.
    """

    work_order_id: str
    status: DecisionStatus
    resolution: ReviewResolution | None = None
