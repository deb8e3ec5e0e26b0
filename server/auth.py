"""Bearer tokens: the development signing key, minting and verification."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import jwt

from shared_schema import Actor, Role

from .config import Settings

DEV_ALGORITHM = "HS256"


class AuthenticationError(Exception):
    """A missing, malformed, expired or wrongly signed token."""


def load_or_create_dev_key(path: Path) -> bytes:
    """Read the development key, creating a random one on first use.

    The file is written with mode 0600 through a temporary name and a rename,
    so two processes starting at once end up with one key.
    """
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes().strip()


def mint_dev_token(
    settings: Settings,
    *,
    subject: str,
    role: Role,
    engineer_id: str | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=12),
    now: dt.datetime | None = None,
) -> str:
    """Sign a token with the development key, for the embedded default only."""
    if not subject.strip():
        raise ValueError("subject must not be empty")
    key = load_or_create_dev_key(settings.dev_key_path)
    issued_at = now or dt.datetime.now(dt.timezone.utc)
    claims: dict[str, object] = {
        "sub": subject,
        "role": role.value,
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    if role is Role.ENGINEER:
        claims["engineer_id"] = engineer_id or subject
    return jwt.encode(claims, key, algorithm=DEV_ALGORITHM)


class TokenVerifier:
    """Verifies bearer tokens and turns their claims into an `Actor`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key = load_or_create_dev_key(settings.dev_key_path) if settings.dev_auth else None

    def verify(self, authorization: str | None) -> Actor:
        if self._key is None:
            raise AuthenticationError("no token verifier is configured; set CSDP_DEV_AUTH=true for development tokens")
        if not authorization:
            raise AuthenticationError("missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("invalid Authorization header: expected 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=[DEV_ALGORITHM],
                audience=self._settings.token_audience,
                issuer=self._settings.token_issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError(
                "invalid token: the signature does not match this server's development key; "
                "mint it with `csdp token` using the server's CSDP_VAR_DIR"
            ) from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise AuthenticationError(f"invalid token: the sub claim {subject!r} must be a non-empty string")
        raw_role = claims.get("role")
        try:
            role = Role(raw_role)
        except ValueError:
            allowed = ", ".join(role.value for role in Role)
            raise AuthenticationError(f"invalid token: role claim {raw_role!r} is not one of {allowed}") from None
        engineer_id = claims.get("engineer_id") or (claims["sub"] if role is Role.ENGINEER else None)
        return Actor(subject=subject, role=role, engineer_id=engineer_id)
