"""Protocol versioning and the request-level signals of the sync API.

A decision's reason code explains one event. A signal explains why a whole
request was not served, and its sentence names the client's next step:
update the app, or drop its confirmed read model and pull from the start.
"""

from __future__ import annotations

import enum

# Version of the push and pull protocol spoken by this code. A client sends it
# in PROTOCOL_HEADER on every request; a request without the header is taken
# as version 1.
PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOL_VERSIONS = frozenset({1})
PROTOCOL_HEADER = "X-CSDP-Protocol-Version"
# The device's pull cursor, sent with a push so the server can signal a reset
# before it decides events that were based on a log it no longer has.
CURSOR_HEADER = "X-CSDP-Cursor"
# The identity of the server's event log: a random id, replaced whenever the store is
# restored from a backup. The server sends it on every pull, push and stream response.
# A client sends back the last one it received, and a different value means a reset.
EPOCH_HEADER = "X-CSDP-Log-Epoch"
# Name and version of the client library, such as `csdp-python/0.1.0`, for logs.
SDK_HEADER = "X-CSDP-SDK-Version"


class SyncSignal(str, enum.Enum):
    """Machine-readable cause of a request that the server did not serve, in the `reason` of the error body."""

    UNSUPPORTED_PROTOCOL_VERSION = "unsupported_protocol_version"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    RESET_REQUIRED = "reset_required"


# HTTP status of each signal.
SIGNAL_STATUS: dict[SyncSignal, int] = {
    SyncSignal.UNSUPPORTED_PROTOCOL_VERSION: 426,
    SyncSignal.UNSUPPORTED_SCHEMA_VERSION: 422,
    SyncSignal.RESET_REQUIRED: 409,
}

# Sentence templates, with the placeholders {version}, {supported}, {cursor} and {head}.
# The sentence of UNSUPPORTED_PROTOCOL_VERSION is for a client older than the
# server; PROTOCOL_NEWER_SENTENCE is for a client newer than the server.
SIGNAL_SENTENCES: dict[SyncSignal, str] = {
    SyncSignal.UNSUPPORTED_PROTOCOL_VERSION: (
        "Protocol version {version} is not supported by this server, which supports {supported}. "
        "Update the app; events recorded meanwhile stay on the device."
    ),
    SyncSignal.UNSUPPORTED_SCHEMA_VERSION: (
        "Event schema version {version} is newer than this server's {supported}. "
        "The request was not stored; send it again after the server is updated."
    ),
    SyncSignal.RESET_REQUIRED: (
        "The cursor {cursor} is ahead of the server's last position {head}, for example after a restore "
        "from backup. Drop the confirmed copy of the orders, pull again from 0 and push pending events again."
    ),
}

PROTOCOL_NEWER_SENTENCE = (
    "Protocol version {version} is newer than this server, which speaks protocol {supported}. "
    "The server needs an update, or use an app that speaks protocol {supported}; "
    "events recorded meanwhile stay on the device."
)
