"""Bearer token verification: the identity provider's keys, or the development key.

The token header's `alg` picks the path. HS256 is checked against the
development key, and only when development tokens are enabled. The
asymmetric algorithms in `CSDP_JWT_ALGORITHMS` are checked against the
identity provider's JWKS or configured public key. No other algorithm, `none`
included, is accepted, so an HS256 token signed with the provider's public key
(algorithm confusion) meets the development key or nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from shared_schema import Actor, Role

from ..config import ConfigError, Settings
from .dev_key import DEV_ALGORITHM, DEV_ISSUER, load_or_create_dev_key
from .errors import AuthenticationError, AuthorizationError
from .jwks import JwksCache

# Tokens of real identity providers stay far below this; larger ones are rejected unread.
MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# When a token carries several roles of this service, the actor takes the broadest.
ROLE_RANK = (Role.ADMIN, Role.MANAGER, Role.DISPATCHER, Role.ENGINEER)
MAX_SUBJECT_LENGTH = 256

_JWT_ERRORS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "invalid token: it has expired; get a new one"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "invalid token: it is not valid yet (nbf or iat lies ahead)"),
    (jwt.InvalidIssuerError, "wrong_issuer", "invalid token: its issuer is not the one this server trusts"),
    (jwt.InvalidAudienceError, "wrong_audience", "invalid token: its audience is not this server"),
    (jwt.InvalidSignatureError, "bad_signature", "invalid token: the signature does not match the key"),
    (jwt.MissingRequiredClaimError, "missing_claim", ""),
    (jwt.exceptions.InvalidSubjectError, "invalid_subject", "invalid token: the sub claim must be a string"),
)


class TokenVerifier:
    """Turns an `Authorization` header into an `Actor`, or raises why not."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dev_key = load_or_create_dev_key(settings.dev_key_path) if settings.dev_auth_enabled else None
        self.jwks = (
            JwksCache(
                settings.jwks_url,
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
            )
            if settings.jwks_url
            else None
        )
        self._public_key: Any = None
        self._public_key_algorithms: frozenset[str] = frozenset()
        if settings.jwt_public_key_file is not None:
            self._public_key, fitting = _load_public_key(settings.jwt_public_key_file)
            self._public_key_algorithms = fitting & frozenset(settings.jwt_algorithms)
            if not self._public_key_algorithms:
                raise ConfigError(
                    f"CSDP_JWT_PUBLIC_KEY_FILE={str(settings.jwt_public_key_file)!r} contains a key for "
                    f"{', '.join(sorted(fitting))}, none of which is in CSDP_JWT_ALGORITHMS="
                    f"{','.join(settings.jwt_algorithms)!r}; add the key's algorithm to CSDP_JWT_ALGORITHMS"
                )

    @property
    def accepted_algorithms(self) -> list[str]:
        names = list(self._settings.jwt_algorithms) if self._settings.identity_provider_configured else []
        return names + ([DEV_ALGORITHM] if self._dev_key is not None else [])

    async def verify(self, authorization: str | None) -> Actor:
        """Check the header's bearer token and return the actor it names."""
        token = _bearer_token(authorization)
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError(
                "token_too_large", f"invalid token: it is {len(token)} bytes, more than the limit of {MAX_TOKEN_BYTES}"
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed_token", "invalid token: it is not a signed JWT") from None

        algorithm = header.get("alg")
        key, issuer, role_claim, engineer_claim = await self._verification_inputs(algorithm, header.get("kid"))
        claims = self._decode(token, key, algorithm, issuer)
        for name in ("exp", "iat", "nbf"):
            # JSON true passes pyjwt's integer checks, because bool is an int in Python.
            if isinstance(claims.get(name), bool):
                raise AuthenticationError("invalid_token", f"invalid token: the {name} claim must be a number")

        subject = _printable_claim(claims["sub"])
        if subject is None:
            raise AuthenticationError(
                "invalid_subject",
                f"invalid token: the sub claim must be printable text of 1 to {MAX_SUBJECT_LENGTH} characters",
            )
        role = _role_from(claims, role_claim)
        engineer_id = None
        if role is Role.ENGINEER:
            engineer_id = _printable_claim(_claim_at(claims, engineer_claim)) or subject
        return Actor(subject=subject, role=role, engineer_id=engineer_id)

    async def _verification_inputs(self, algorithm: object, kid: object) -> tuple[Any, str, str, str]:
        """Pick the key, issuer and claim paths for the token's algorithm, or raise when none fits."""
        settings = self._settings
        if algorithm == DEV_ALGORITHM and self._dev_key is not None:
            return self._dev_key, DEV_ISSUER, "roles", "engineer_id"
        if settings.identity_provider_configured and algorithm in settings.jwt_algorithms:
            key = await self._provider_key(str(algorithm), kid)
            return key, settings.jwt_issuer, settings.role_claim, settings.engineer_claim
        shown = algorithm if isinstance(algorithm, str) else type(algorithm).__name__
        raise AuthenticationError(
            "algorithm_not_allowed",
            f"invalid token: algorithm {shown[:20]!r} is not accepted; this server accepts "
            f"{', '.join(self.accepted_algorithms)}",
        )

    async def _provider_key(self, algorithm: str, kid: object) -> Any:
        if self.jwks is not None:
            if kid is not None and not isinstance(kid, str):
                raise AuthenticationError("malformed_token", "invalid token: its kid header is not a string")
            jwk = await self.jwks.key(kid)
            if jwk.algorithm_name != algorithm:
                raise AuthenticationError(
                    "algorithm_not_allowed",
                    f"invalid token: it is signed with {algorithm} but its key is for {jwk.algorithm_name}",
                )
            return jwk.key
        if algorithm not in self._public_key_algorithms:
            raise AuthenticationError(
                "algorithm_not_allowed",
                f"invalid token: algorithm {algorithm} does not fit the configured public key",
            )
        return self._public_key

    def _decode(self, token: str, key: Any, algorithm: str, issuer: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.jwt_audience,
                issuer=issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            for kind, reason, message in _JWT_ERRORS:
                if isinstance(exc, kind):
                    raise AuthenticationError(reason, message or f"invalid token: {exc}") from None
            raise AuthenticationError("invalid_token", f"invalid token: {str(exc)[:200]}") from None
        except (ValueError, TypeError):
            # A key that does not fit the algorithm, as cryptography reports it.
            raise AuthenticationError("invalid_token", "invalid token: its signature cannot be checked with the key") from None


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationError("missing_token", "missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("malformed_token", "invalid Authorization header: expected 'Bearer <token>'")
    return token.strip()


def _printable_claim(value: Any) -> str | None:
    """Return the claim when it is printable, non-blank text within the length limit, else None."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SUBJECT_LENGTH or not value.isprintable():
        return None
    return value


def _claim_at(claims: dict[str, Any], path: str) -> Any:
    current: Any = claims
    for name in path.split("."):
        if not isinstance(current, dict) or name not in current:
            return None
        current = current[name]
    return current


def _role_from(claims: dict[str, Any], path: str) -> Role:
    """Pick the broadest role of this service among the claim's values (a list, or a space-separated string)."""
    value = _claim_at(claims, path)
    if isinstance(value, str):
        values: list[Any] = value.split()
    elif isinstance(value, list):
        values = value
    else:
        values = []
    if not values:
        raise AuthorizationError("no_role", f"the token carries no roles in its {path} claim")
    names = {item for item in values if isinstance(item, str)}
    for role in ROLE_RANK:
        if role.value in names:
            return role
    shown = ", ".join(repr(str(item)[:40]) for item in values[:5])
    allowed = ", ".join(role.value for role in ROLE_RANK)
    raise AuthorizationError("unknown_role", f"the token's roles ({shown}) include none of {allowed}")


def _load_public_key(path: Path) -> tuple[Any, frozenset[str]]:
    """Read a PEM public key and the algorithms that fit its type."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"CSDP_JWT_PUBLIC_KEY_FILE={str(path)!r} is not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        name = by_curve.get(key.curve.name)
        if name is not None:
            return key, frozenset({name})
    raise ConfigError(f"CSDP_JWT_PUBLIC_KEY_FILE={str(path)!r} contains an unsupported key type; use an RSA key or an EC key on P-256, P-384 or P-521")
