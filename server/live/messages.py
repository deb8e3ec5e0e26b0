"""Stream filters and the JSON messages of the live stream.

Every message is one JSON object with a `kind`: `change` (an accepted event),
`heartbeat` (WebSocket only; SSE sends a comment) or `disconnect`. SSE and
WebSocket carry the same objects, so a client parses both alike.
"""

from __future__ import annotations

import dataclasses
import json

from ..store.live_reads import LiveRow

# Reasons sent in a `disconnect` message before the server closes a stream.
SLOW_CONSUMER = "slow_consumer"
TOKEN_EXPIRED = "token_expired"
SERVER_STOPPING = "server_stopping"
STORE_UNAVAILABLE = "store_unavailable"


@dataclasses.dataclass(frozen=True, slots=True)
class StreamFilter:
    """The updates one subscriber receives.

    `scope` is the engineer whose own orders limit an engineer's stream, and
    None for office roles. `engineer_id`, `work_order_id` and `kinds` (event
    types) are the filters from the query string; None means no filter.
    """

    scope: str | None = None
    engineer_id: str | None = None
    work_order_id: str | None = None
    kinds: frozenset[str] | None = None

    @property
    def audience_engineer(self) -> str | None:
        """Return the engineer whose audience an event must be in, if any."""
        return self.scope or self.engineer_id

    def message(self, row: LiveRow, cache: dict[bool, str] | None = None) -> str | None:
        """Return the `change` message for `row`, or None when this subscriber does not receive it.

        `cache` keeps the encoded message per revoked flag, so a hub that sends
        one row to many subscribers encodes it at most twice.
        """
        if self.work_order_id is not None and row.work_order_id != self.work_order_id:
            return None
        if self.kinds is not None and row.type not in self.kinds:
            return None
        engineer = self.audience_engineer
        if engineer is not None and engineer not in row.audience:
            return None
        # An engineer who is no longer the assignee receives the event that took the
        # order away, without the order's state, as in the pull feed.
        revoked = self.scope is not None and row.assignee != self.scope
        if cache is not None and revoked in cache:
            return cache[revoked]
        encoded = change_message(row, revoked=revoked)
        if cache is not None:
            cache[revoked] = encoded
        return encoded


def change_message(row: LiveRow, *, revoked: bool) -> str:
    """Encode an accepted event with its order's current state, from the JSON texts of the store."""
    state = "null" if revoked or row.state_json is None else row.state_json
    return (
        f'{{"kind":"change","position":{row.position},"work_order_id":{json.dumps(row.work_order_id)},'
        f'"type":{json.dumps(row.type)},"revoked":{"true" if revoked else "false"},'
        f'"event":{row.event_json},"work_order":{state}}}'
    )


def disconnect_message(reason: str, resume_from: int) -> str:
    return json.dumps({"kind": "disconnect", "reason": reason, "resume_from": resume_from})


def heartbeat_message(position: int) -> str:
    return json.dumps({"kind": "heartbeat", "position": position})
