"""The development signing key and the tokens `csdp token` mints with it.

Development tokens serve the embedded default: one key file in the var
folder, HS256, a fixed issuer, and the claims the verifier reads by default.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import jwt

from shared_schema import Role

from ..config import ConfigError, Settings

DEV_ALGORITHM = "HS256"
DEV_ISSUER = "csdp-dev"


def load_or_create_dev_key(path: Path) -> bytes:
    """Read the development key, creating a random one on first use.

    The file is written with mode 0600 through a temporary name and a rename,
    so two processes starting at once end up with one key.
    """
    try:
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
    except OSError as exc:
        raise ConfigError(
            f"cannot read or create the development key {path}: {exc.strerror or exc}; "
            "set CSDP_VAR_DIR to a folder this user can write"
        ) from None


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
        "roles": [role.value],
        "iss": DEV_ISSUER,
        "aud": settings.jwt_audience,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    if role is Role.ENGINEER:
        claims["engineer_id"] = engineer_id or subject
    return jwt.encode(claims, key, algorithm=DEV_ALGORITHM)
