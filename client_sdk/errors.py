"""Errors raised by the client SDK."""

from __future__ import annotations


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
