"""Errors of token verification, each with a reason code and a short sentence.

Messages name the check that failed and never include a key, a token or a
stack trace.
"""

from __future__ import annotations


class CredentialsRejected(Exception):
    """Base of the errors raised while verifying a token."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class AuthenticationError(CredentialsRejected):
    """A missing, malformed, expired or wrongly signed token, sent as 401."""


class AuthorizationError(CredentialsRejected):
    """A valid token that carries no role of this service, sent as 403."""


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched and none are cached, sent as 503."""
