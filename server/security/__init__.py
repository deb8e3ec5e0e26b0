"""Access control of the server: token verification, RBAC, rate limit and the audit of denied requests."""

from .dev_key import DEV_ALGORITHM, DEV_ISSUER, load_or_create_dev_key, mint_dev_token
from .errors import AuthenticationError, AuthorizationError, KeysUnavailable
from .tokens import MAX_TOKEN_BYTES, TokenVerifier

__all__ = [
    "DEV_ALGORITHM",
    "DEV_ISSUER",
    "MAX_TOKEN_BYTES",
    "AuthenticationError",
    "AuthorizationError",
    "KeysUnavailable",
    "TokenVerifier",
    "load_or_create_dev_key",
    "mint_dev_token",
]
