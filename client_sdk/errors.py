"""Errors raised by the client SDK."""

from __future__ import annotations


class InvalidEvent(ValueError):
    """An event that `SyncClient.record()` did not store because the server would reject it.

    `field` is the path of the value at fault, such as `type`,
    `$.payload.text`, or `$.payload` for a missing or unknown field.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class SyncError(Exception):
    """A sync round failed; recorded events stay pending for the next one."""


class ServerUnreachable(SyncError):
    """The server could not be reached, or kept responding with 5xx or 429, after every retry."""


class RequestRejected(SyncError):
    """The server responded with a 4xx other than 429, so retrying the same request cannot help."""

    def __init__(self, status_code: int, body: object) -> None:
        super().__init__(f"the server rejected the request with HTTP {status_code}: {body}")
        self.status_code = status_code
        self.body = body

    @property
    def reason(self) -> str | None:
        """The `reason`, or else the `error`, of a JSON error body; None for any other body."""
        if not isinstance(self.body, dict):
            return None
        value = self.body.get("reason") or self.body.get("error")
        return value if isinstance(value, str) else None

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):
            return self.body["message"]
        return str(self.body)


class UpgradeRequired(SyncError):
    """The server does not support this SDK's protocol or event schema version.

    The outbox is kept as it is, and the client sends nothing until the app
    is updated to another SDK version or `SyncClient.retry_blocked()` is called.
    """


class ResetRequired(SyncError):
    """The server cannot continue from the device's cursor (409 `reset_required`), for example after a restore.

    `head` is the last global position the server's log shares with the log
    the device synced from, and `epoch` the server's log epoch (None from a
    server that sends none).
    """

    def __init__(self, message: str, head: int, epoch: str | None = None) -> None:
        super().__init__(message)
        self.head = head
        self.epoch = epoch
