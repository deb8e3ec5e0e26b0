"""Server settings, read from `CSDP_*` environment variables and validated at start."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


class ConfigError(ValueError):
    """A setting with an invalid value; the message names the variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    var_dir: Path = Path("var")
    """Folder for the embedded database, the development key and blobs (`CSDP_VAR_DIR`)."""

    database_url: str = ""
    """Store location (`CSDP_DATABASE_URL`); empty means `sqlite:///<var_dir>/csdp.sqlite3`."""

    max_batch_events: int = 500
    """Largest number of events accepted in one `POST /v1/events` (`CSDP_MAX_BATCH_EVENTS`)."""

    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body in bytes (`CSDP_MAX_BODY_BYTES`)."""

    clock_skew_tolerance_seconds: float = 300.0
    """How far a device's `occurred_at` may lie after the server's clock (`CSDP_CLOCK_SKEW_TOLERANCE_SECONDS`)."""

    dev_auth: bool = True
    """Whether tokens signed with the development key are accepted (`CSDP_DEV_AUTH`)."""

    token_issuer: str = "csdp-dev"
    token_audience: str = "csdp"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'csdp.sqlite3'}"

    @property
    def store_kind(self) -> str:
        """Return "sqlite" or "postgresql", raising ConfigError for any other URL scheme."""
        url = self.effective_database_url
        if url.startswith("sqlite:///"):
            return "sqlite"
        if url.startswith(("postgresql://", "postgres://")):
            # Without a database name libpq falls back to the OS user's database,
            # which would put the schema into a database the URL does not name.
            path = url.split("://", 1)[1].split("?", 1)[0]
            if "/" not in path or not path.split("/", 1)[1]:
                raise ConfigError(
                    f"CSDP_DATABASE_URL={_redact(url)!r} is invalid: it names no database; "
                    "expected postgresql://USER@HOST:PORT/DATABASE"
                )
            return "postgresql"
        raise ConfigError(
            f"CSDP_DATABASE_URL={_redact(url)!r} is invalid: expected sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE, or leave it empty for the embedded default"
        )

    @property
    def sqlite_path(self) -> Path:
        return Path(self.effective_database_url.removeprefix("sqlite:///"))

    @property
    def dev_key_path(self) -> Path:
        return self.var_dir / "dev-jwt-key"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the environment; keyword overrides (from the CLI) win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if "CSDP_VAR_DIR" in env:
            values["var_dir"] = Path(env["CSDP_VAR_DIR"])
        if "CSDP_DATABASE_URL" in env:
            values["database_url"] = env["CSDP_DATABASE_URL"]
        if "CSDP_MAX_BATCH_EVENTS" in env:
            values["max_batch_events"] = _positive_int(env, "CSDP_MAX_BATCH_EVENTS")
        if "CSDP_MAX_BODY_BYTES" in env:
            values["max_body_bytes"] = _positive_int(env, "CSDP_MAX_BODY_BYTES")
        if "CSDP_CLOCK_SKEW_TOLERANCE_SECONDS" in env:
            values["clock_skew_tolerance_seconds"] = _non_negative_float(env, "CSDP_CLOCK_SKEW_TOLERANCE_SECONDS")
        if "CSDP_DEV_AUTH" in env:
            values["dev_auth"] = _boolean(env, "CSDP_DEV_AUTH")
        values.update({key: value for key, value in overrides.items() if value is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.store_kind  # noqa: B018 - validates CSDP_DATABASE_URL now, not at the first request
        return settings


def _positive_int(env: dict[str, str] | os._Environ[str], name: str) -> int:
    raw = env[name]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number greater than 0") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number greater than 0")
    return value


def _non_negative_float(env: dict[str, str] | os._Environ[str], name: str) -> float:
    raw = env[name]
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds, 0 or more") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds, 0 or more")
    return value


def _boolean(env: dict[str, str] | os._Environ[str], name: str) -> bool:
    raw = env[name].strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={env[name]!r} is invalid: expected true or false")


def _redact(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{separator}{credentials.split(':', 1)[0]}:***@{host}"
