"""Server settings, read from `CSDP_*` environment variables and validated at start."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import urllib.parse
from pathlib import Path


# Asymmetric algorithms an identity provider may sign with. HS256 is absent on
# purpose: a shared secret serves the development key only.
IDENTITY_PROVIDER_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


# A shorter scrape token could be guessed; 32 characters is 128 bits as hex.
MIN_METRICS_TOKEN_LENGTH = 32


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

    dev_auth: bool | None = None
    """Whether tokens signed with the development key are accepted (`CSDP_DEV_AUTH`).

    None means: accepted when no identity provider is configured, rejected otherwise.
    """

    allow_dev_auth_on_network: bool = False
    """Accept development tokens on a non-loopback address (`CSDP_ALLOW_DEV_AUTH_ON_NETWORK`)."""

    jwks_url: str = ""
    """The identity provider's JWKS document (`CSDP_JWKS_URL`)."""

    jwt_public_key_file: Path | None = None
    """A PEM file with the identity provider's RSA or EC public key (`CSDP_JWT_PUBLIC_KEY_FILE`)."""

    jwt_algorithms: tuple[str, ...] = ("RS256", "ES256")
    """Signature algorithms accepted from the identity provider (`CSDP_JWT_ALGORITHMS`, comma-separated)."""

    jwt_issuer: str = ""
    """The `iss` claim of the identity provider's tokens (`CSDP_JWT_ISSUER`)."""

    jwt_audience: str = "csdp"
    """The `aud` claim every token must carry (`CSDP_JWT_AUDIENCE`)."""

    jwt_leeway_seconds: float = 30.0
    """Clock difference allowed when checking `exp`, `nbf` and `iat` (`CSDP_JWT_LEEWAY_SECONDS`)."""

    role_claim: str = "roles"
    """Dotted path of the claim with the roles, such as `realm_access.roles` (`CSDP_ROLE_CLAIM`)."""

    engineer_claim: str = "engineer_id"
    """Dotted path of the claim with an engineer's id; the subject when absent (`CSDP_ENGINEER_CLAIM`)."""

    jwks_cache_seconds: float = 300.0
    """How long fetched keys are used before the JWKS document is fetched again (`CSDP_JWKS_CACHE_SECONDS`)."""

    jwks_min_refresh_seconds: float = 5.0
    """Shortest time between two fetches caused by unknown key ids (`CSDP_JWKS_MIN_REFRESH_SECONDS`)."""

    sla_clock_seconds: float = 30.0
    """Seconds between two runs of the SLA clock job; 0 turns the job off (`CSDP_SLA_CLOCK_SECONDS`)."""

    rate_limit_per_minute: int = 1200
    """`POST /v1/events` requests each subject may send per minute; 0 turns the limit off (`CSDP_RATE_LIMIT_PER_MINUTE`)."""

    rate_limit_burst: int = 200
    """Requests a subject may send at once before the per-minute rate applies (`CSDP_RATE_LIMIT_BURST`)."""

    blob_backend: str = "local"
    """Backend of the attachment blob store: `local` (a folder) or `s3` (`CSDP_BLOB_BACKEND`)."""

    blob_dir: Path | None = None
    """Folder of the local blob store (`CSDP_BLOB_DIR`). None means `<var_dir>/blobs`."""

    blob_max_bytes: int = 100 * 1024 * 1024
    """Largest blob in bytes that an upload may declare (`CSDP_BLOB_MAX_BYTES`)."""

    blob_s3_bucket: str = ""
    """Bucket of the S3 blob store (`CSDP_BLOB_S3_BUCKET`), which must exist before the server starts."""

    blob_s3_endpoint_url: str = ""
    """S3 endpoint of a service such as SeaweedFS or MinIO (`CSDP_BLOB_S3_ENDPOINT_URL`). Empty means AWS."""

    blob_s3_region: str = "us-east-1"
    """Region used to sign S3 requests (`CSDP_BLOB_S3_REGION`)."""

    blob_s3_prefix: str = "blobs/"
    """Key prefix of blobs inside the bucket (`CSDP_BLOB_S3_PREFIX`)."""

    blob_s3_access_key_id: str = ""
    """S3 access key id (`CSDP_BLOB_S3_ACCESS_KEY_ID`). Empty means boto3's default credential chain."""

    blob_s3_secret_access_key: str = dataclasses.field(default="", repr=False)
    """S3 secret key (`CSDP_BLOB_S3_SECRET_ACCESS_KEY`), required together with the access key id."""
    live_poll_seconds: float = 1.0
    """Maximum wait of the live hub between two reads of the log when nothing wakes it (`CSDP_LIVE_POLL_SECONDS`)."""

    live_heartbeat_seconds: float = 15.0
    """Seconds without a change after which a live stream sends a heartbeat (`CSDP_LIVE_HEARTBEAT_SECONDS`)."""

    live_buffer_messages: int = 1000
    """Changes queued for one live subscriber before it is disconnected as too slow (`CSDP_LIVE_BUFFER_MESSAGES`)."""

    live_listener_check_seconds: float = 5.0
    """Seconds between two checks of the PostgreSQL LISTEN connection (`CSDP_LIVE_LISTENER_CHECK_SECONDS`)."""
    db_pool_min_size: int = 1
    """PostgreSQL connections each server process keeps open (`CSDP_DB_POOL_MIN_SIZE`)."""

    db_pool_max_size: int = 10
    """Most PostgreSQL connections each server process opens (`CSDP_DB_POOL_MAX_SIZE`)."""

    metrics_token: str = ""
    """A static bearer token that may read `GET /metrics` besides admin tokens; empty means admins only (`CSDP_METRICS_TOKEN`)."""

    otel_enabled: bool = False
    """Export OpenTelemetry traces over OTLP/HTTP; needs the `[otel]` extra (`CSDP_OTEL_ENABLED`)."""

    otel_service_name: str = "csdp"
    """The `service.name` resource attribute of exported spans (`CSDP_OTEL_SERVICE_NAME`)."""

    @property
    def identity_provider_configured(self) -> bool:
        return bool(self.jwks_url or self.jwt_public_key_file)

    @property
    def dev_auth_enabled(self) -> bool:
        return self.dev_auth if self.dev_auth is not None else not self.identity_provider_configured

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
                    f"CSDP_DATABASE_URL={redact_url(url)!r} is invalid: it names no database; "
                    "expected postgresql://USER@HOST:PORT/DATABASE"
                )
            return "postgresql"
        raise ConfigError(
            f"CSDP_DATABASE_URL={redact_url(url)!r} is invalid: expected sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DATABASE, or leave it empty for the embedded default"
        )

    @property
    def sqlite_path(self) -> Path:
        return Path(self.effective_database_url.removeprefix("sqlite:///"))

    @property
    def dev_key_path(self) -> Path:
        return self.var_dir / "dev-jwt-key"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.var_dir / "blobs"

    @property
    def blob_staging_dir(self) -> Path:
        """Folder of partial uploads, on the server's local disk whatever the blob backend."""
        return self.var_dir / "blob-uploads"

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
        if "CSDP_ALLOW_DEV_AUTH_ON_NETWORK" in env:
            values["allow_dev_auth_on_network"] = _boolean(env, "CSDP_ALLOW_DEV_AUTH_ON_NETWORK")
        for name, field in (
            ("CSDP_JWKS_URL", "jwks_url"),
            ("CSDP_JWT_ISSUER", "jwt_issuer"),
            ("CSDP_JWT_AUDIENCE", "jwt_audience"),
            ("CSDP_ROLE_CLAIM", "role_claim"),
            ("CSDP_ENGINEER_CLAIM", "engineer_claim"),
        ):
            if name in env:
                values[field] = env[name].strip()
        if env.get("CSDP_JWT_PUBLIC_KEY_FILE"):
            values["jwt_public_key_file"] = Path(env["CSDP_JWT_PUBLIC_KEY_FILE"])
        if "CSDP_JWT_ALGORITHMS" in env:
            values["jwt_algorithms"] = tuple(part.strip() for part in env["CSDP_JWT_ALGORITHMS"].split(",") if part.strip())
        for name, field in (
            ("CSDP_JWT_LEEWAY_SECONDS", "jwt_leeway_seconds"),
            ("CSDP_JWKS_CACHE_SECONDS", "jwks_cache_seconds"),
            ("CSDP_JWKS_MIN_REFRESH_SECONDS", "jwks_min_refresh_seconds"),
            ("CSDP_SLA_CLOCK_SECONDS", "sla_clock_seconds"),
            ("CSDP_LIVE_POLL_SECONDS", "live_poll_seconds"),
            ("CSDP_LIVE_HEARTBEAT_SECONDS", "live_heartbeat_seconds"),
            ("CSDP_LIVE_LISTENER_CHECK_SECONDS", "live_listener_check_seconds"),
        ):
            if name in env:
                values[field] = _non_negative_float(env, name)
        if "CSDP_RATE_LIMIT_PER_MINUTE" in env:
            values["rate_limit_per_minute"] = _non_negative_int(env, "CSDP_RATE_LIMIT_PER_MINUTE")
        if "CSDP_RATE_LIMIT_BURST" in env:
            values["rate_limit_burst"] = _positive_int(env, "CSDP_RATE_LIMIT_BURST")
        values.update(_blob_values(env))
        if "CSDP_LIVE_BUFFER_MESSAGES" in env:
            values["live_buffer_messages"] = _positive_int(env, "CSDP_LIVE_BUFFER_MESSAGES")
        if "CSDP_DB_POOL_MIN_SIZE" in env:
            values["db_pool_min_size"] = _non_negative_int(env, "CSDP_DB_POOL_MIN_SIZE")
        if "CSDP_DB_POOL_MAX_SIZE" in env:
            values["db_pool_max_size"] = _positive_int(env, "CSDP_DB_POOL_MAX_SIZE")
        if "CSDP_METRICS_TOKEN" in env:
            values["metrics_token"] = env["CSDP_METRICS_TOKEN"].strip()
        if "CSDP_OTEL_ENABLED" in env:
            values["otel_enabled"] = _boolean(env, "CSDP_OTEL_ENABLED")
        if "CSDP_OTEL_SERVICE_NAME" in env:
            values["otel_service_name"] = env["CSDP_OTEL_SERVICE_NAME"].strip()
        values.update({key: value for key, value in overrides.items() if value is not None})
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ConfigError naming the variable of the first invalid setting."""
        self.store_kind  # noqa: B018 - validates CSDP_DATABASE_URL now, not at the first request

        for name, field, maximum in _SECONDS_LIMITS:
            value = getattr(self, field)
            if not (math.isfinite(value) and 0 <= value <= maximum):
                raise ConfigError(f"{name}={value!r} is invalid: expected a number of seconds from 0 to {maximum:g}")
        for name, field, minimum, maximum in _LIVE_SECONDS_LIMITS:
            value = getattr(self, field)
            if not (math.isfinite(value) and minimum <= value <= maximum):
                raise ConfigError(f"{name}={value!r} is invalid: expected a number of seconds from {minimum:g} to {maximum:g}")
        if 0 < self.sla_clock_seconds < MIN_SLA_CLOCK_SECONDS:
            raise ConfigError(
                f"CSDP_SLA_CLOCK_SECONDS={self.sla_clock_seconds!r} is invalid: expected 0 (off) or a number of "
                f"seconds from {MIN_SLA_CLOCK_SECONDS:g} to 86400"
            )
        # Whole-number settings, checked here too because the CLI and tests build Settings without from_env.
        for name, field, minimum, maximum in _WHOLE_NUMBER_LIMITS:
            value = getattr(self, field)
            if not minimum <= value <= maximum:
                raise ConfigError(f"{name}={value!r} is invalid: expected a whole number from {minimum} to {maximum}")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ConfigError(
                f"CSDP_DB_POOL_MIN_SIZE={self.db_pool_min_size} is larger than "
                f"CSDP_DB_POOL_MAX_SIZE={self.db_pool_max_size}; lower the first or raise the second"
            )
        token_is_ascii = all(0x21 <= ord(character) <= 0x7E for character in self.metrics_token)
        if self.metrics_token and (len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH or not token_is_ascii):
            raise ConfigError(
                f"CSDP_METRICS_TOKEN is invalid: expected at least {MIN_METRICS_TOKEN_LENGTH} printable ASCII "
                "characters without spaces, "
                "for example the output of: openssl rand -hex 32"
            )
        if self.otel_enabled and not self.otel_service_name:
            raise ConfigError("CSDP_OTEL_SERVICE_NAME is empty; give the service name that exported spans carry")

        # The identity provider and the token claims.
        if self.jwks_url and self.jwt_public_key_file:
            raise ConfigError(
                "CSDP_JWKS_URL and CSDP_JWT_PUBLIC_KEY_FILE are both set; configure the identity provider's keys one way"
            )
        if self.jwks_url:
            _check_http_url("CSDP_JWKS_URL", self.jwks_url)
        if self.jwt_public_key_file and not self.jwt_public_key_file.is_file():
            raise ConfigError(f"CSDP_JWT_PUBLIC_KEY_FILE={str(self.jwt_public_key_file)!r} is not a readable file")
        if self.identity_provider_configured and not self.jwt_issuer:
            raise ConfigError("CSDP_JWT_ISSUER is not set; give the iss claim of the identity provider's tokens")
        unsupported = [name for name in self.jwt_algorithms if name not in IDENTITY_PROVIDER_ALGORITHMS]
        if unsupported or not self.jwt_algorithms:
            raise ConfigError(
                f"CSDP_JWT_ALGORITHMS={','.join(self.jwt_algorithms)!r} is invalid: expected one or more of "
                f"{', '.join(IDENTITY_PROVIDER_ALGORITHMS)}; HS256 serves the development key only"
            )
        if not self.jwt_audience:
            raise ConfigError("CSDP_JWT_AUDIENCE is empty; give the aud claim tokens must carry")
        for name, path in (("CSDP_ROLE_CLAIM", self.role_claim), ("CSDP_ENGINEER_CLAIM", self.engineer_claim)):
            if not path or any(not part for part in path.split(".")):
                raise ConfigError(f"{name}={path!r} is invalid: expected a claim name or a dotted path such as realm_access.roles")

        self._validate_blob_store()

        if not self.dev_auth_enabled and not self.identity_provider_configured:
            raise ConfigError(
                "CSDP_DEV_AUTH is false and no identity provider is configured, so no token could be verified; "
                "set CSDP_JWKS_URL or CSDP_JWT_PUBLIC_KEY_FILE"
            )


    def _validate_blob_store(self) -> None:
        if self.blob_backend not in BLOB_BACKENDS:
            raise ConfigError(f"CSDP_BLOB_BACKEND={self.blob_backend!r} is invalid: expected one of {', '.join(BLOB_BACKENDS)}")
        s3_settings = {
            "CSDP_BLOB_S3_BUCKET": self.blob_s3_bucket,
            "CSDP_BLOB_S3_ENDPOINT_URL": self.blob_s3_endpoint_url,
            "CSDP_BLOB_S3_ACCESS_KEY_ID": self.blob_s3_access_key_id,
            "CSDP_BLOB_S3_SECRET_ACCESS_KEY": self.blob_s3_secret_access_key,
        }
        if self.blob_backend == "local":
            stray = [name for name, value in s3_settings.items() if value]
            if stray:
                verb = "is" if len(stray) == 1 else "are"
                raise ConfigError(
                    f"{', '.join(stray)} {verb} set but CSDP_BLOB_BACKEND is local; set CSDP_BLOB_BACKEND=s3 or remove them"
                )
            return
        if self.blob_dir is not None:
            raise ConfigError("CSDP_BLOB_DIR is set but CSDP_BLOB_BACKEND is s3; remove one of them")
        if not self.blob_s3_bucket:
            raise ConfigError("CSDP_BLOB_S3_BUCKET is not set; the s3 blob backend needs the name of an existing bucket")
        if not _BUCKET_NAME.fullmatch(self.blob_s3_bucket):
            raise ConfigError(
                f"CSDP_BLOB_S3_BUCKET={self.blob_s3_bucket!r} is invalid: expected 3 to 63 lowercase letters, "
                "digits, dots or hyphens, starting and ending with a letter or digit"
            )
        if self.blob_s3_endpoint_url:
            _check_http_url("CSDP_BLOB_S3_ENDPOINT_URL", self.blob_s3_endpoint_url)
        if bool(self.blob_s3_access_key_id) != bool(self.blob_s3_secret_access_key):
            raise ConfigError(
                "CSDP_BLOB_S3_ACCESS_KEY_ID and CSDP_BLOB_S3_SECRET_ACCESS_KEY must be set together, "
                "or both left empty to use boto3's default credential chain"
            )
        if not self.blob_s3_region or not _REGION_NAME.fullmatch(self.blob_s3_region):
            raise ConfigError(f"CSDP_BLOB_S3_REGION={self.blob_s3_region!r} is invalid: expected a region such as eu-central-1")
        if self.blob_s3_prefix.startswith("/") or "\x00" in self.blob_s3_prefix or len(self.blob_s3_prefix) > 200:
            raise ConfigError(
                f"CSDP_BLOB_S3_PREFIX={self.blob_s3_prefix!r} is invalid: expected at most 200 characters, "
                "not starting with /"
            )


BLOB_BACKENDS = ("local", "s3")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_NAME = re.compile(r"[a-z0-9-]{1,40}")


def _blob_values(env: dict[str, str] | os._Environ[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    if "CSDP_BLOB_BACKEND" in env:
        values["blob_backend"] = env["CSDP_BLOB_BACKEND"].strip().lower()
    if env.get("CSDP_BLOB_DIR"):
        values["blob_dir"] = Path(env["CSDP_BLOB_DIR"])
    if "CSDP_BLOB_MAX_BYTES" in env:
        values["blob_max_bytes"] = _positive_int(env, "CSDP_BLOB_MAX_BYTES")
    for name, field in (
        ("CSDP_BLOB_S3_BUCKET", "blob_s3_bucket"),
        ("CSDP_BLOB_S3_ENDPOINT_URL", "blob_s3_endpoint_url"),
        ("CSDP_BLOB_S3_REGION", "blob_s3_region"),
        ("CSDP_BLOB_S3_ACCESS_KEY_ID", "blob_s3_access_key_id"),
        ("CSDP_BLOB_S3_SECRET_ACCESS_KEY", "blob_s3_secret_access_key"),
    ):
        if name in env:
            values[field] = env[name].strip()
    if "CSDP_BLOB_S3_PREFIX" in env:
        values["blob_s3_prefix"] = env["CSDP_BLOB_S3_PREFIX"]
    return values


# Time settings with their variables and upper bounds in seconds. The bounds
# stop a typo (or nan and inf, which float() accepts) from switching a check off.
_SECONDS_LIMITS = (
    ("CSDP_CLOCK_SKEW_TOLERANCE_SECONDS", "clock_skew_tolerance_seconds", 7 * 86400),
    ("CSDP_JWT_LEEWAY_SECONDS", "jwt_leeway_seconds", 3600),
    ("CSDP_JWKS_CACHE_SECONDS", "jwks_cache_seconds", 7 * 86400),
    ("CSDP_JWKS_MIN_REFRESH_SECONDS", "jwks_min_refresh_seconds", 86400),
    ("CSDP_SLA_CLOCK_SECONDS", "sla_clock_seconds", 86400),
)


# The SLA clock job runs again right after each run, so a tiny interval keeps a
# core busy. The rule is 0 (off) or at least this many seconds.
MIN_SLA_CLOCK_SECONDS = 0.1


# Whole-number settings with their variables and bounds. The maxima catch a typo
# with extra digits. They are chosen by judgement, far above any expected load,
# not measured. A pool larger than PostgreSQL's max_connections cannot be used.
# NOTE: the 5 TiB blob maximum is S3's documented object size limit, not checked here.
_WHOLE_NUMBER_LIMITS = (
    ("CSDP_MAX_BATCH_EVENTS", "max_batch_events", 1, 10_000),
    ("CSDP_MAX_BODY_BYTES", "max_body_bytes", 1, 1024**3),
    ("CSDP_RATE_LIMIT_PER_MINUTE", "rate_limit_per_minute", 0, 1_000_000),
    ("CSDP_RATE_LIMIT_BURST", "rate_limit_burst", 1, 1_000_000),
    ("CSDP_LIVE_BUFFER_MESSAGES", "live_buffer_messages", 1, 1_000_000),
    ("CSDP_DB_POOL_MIN_SIZE", "db_pool_min_size", 0, 1000),
    ("CSDP_DB_POOL_MAX_SIZE", "db_pool_max_size", 1, 1000),
    ("CSDP_BLOB_MAX_BYTES", "blob_max_bytes", 1, 5 * 1024**4),
)


# The live settings must be above 0: a zero wait would make the hub or the
# listener check spin without pause.
_LIVE_SECONDS_LIMITS = (
    ("CSDP_LIVE_POLL_SECONDS", "live_poll_seconds", 0.01, 3600),
    ("CSDP_LIVE_HEARTBEAT_SECONDS", "live_heartbeat_seconds", 0.1, 3600),
    ("CSDP_LIVE_LISTENER_CHECK_SECONDS", "live_listener_check_seconds", 0.1, 3600),
)


def _check_http_url(name: str, url: str) -> None:
    """Raise ConfigError unless `url` is an http(s) URL with a host and a valid port."""
    shown = redact_url(url, hide_bare_user=True)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{name}={shown!r} is invalid: {exc}") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or not all(c.isalnum() or c in ".-:[]_" for c in host):
        raise ConfigError(f"{name}={shown!r} is invalid: expected https://HOST[:PORT]/PATH or http://HOST[:PORT]/PATH")
    if port == 0:
        raise ConfigError(f"{name}={shown!r} is invalid: port 0 cannot be connected to")


def _positive_int(env: dict[str, str] | os._Environ[str], name: str) -> int:
    raw = env[name]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number greater than 0") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number greater than 0")
    return value


def _non_negative_int(env: dict[str, str] | os._Environ[str], name: str) -> int:
    raw = env[name]
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number, 0 or more") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a whole number, 0 or more")
    return value


def _non_negative_float(env: dict[str, str] | os._Environ[str], name: str) -> float:
    raw = env[name]
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds, 0 or more") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds, 0 or more")
    return value


def _boolean(env: dict[str, str] | os._Environ[str], name: str) -> bool:
    raw = env[name].strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={env[name]!r} is invalid: expected true or false")


# Query parameters and keyword/value pairs of a database connection string that carry a secret.
SECRET_CONNECTION_PARAMETERS = frozenset({"password", "sslpassword"})
_SECRET_KEYWORD = re.compile(
    r"\b(password|sslpassword)(\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE
)


def redact_url(url: str, *, hide_bare_user: bool = False) -> str:
    """Hide every password in a URL or connection string, for logs, messages and responses.

    The password of the user part and the values of `password` and `sslpassword`
    query parameters become `***`. A libpq keyword/value string such as
    `host=db password=x` keeps its keywords and loses the secret values.
    With `hide_bare_user`, a user name given without a password is hidden too,
    because some services take a token in that place.
    """
    if "://" not in url:
        return _SECRET_KEYWORD.sub(lambda match: f"{match.group(1)}{match.group(2)}***", url)
    scheme, separator, rest = url.partition("://")
    before_query, question, query = rest.partition("?")
    authority, slash, path = before_query.partition("/")
    # The last "@" ends the user part, so a password with an unencoded "@" is hidden whole.
    credentials, at, host = authority.rpartition("@")
    if at and (":" in credentials or hide_bare_user):
        shown = f"{credentials.split(':', 1)[0]}:***" if ":" in credentials else "***"
        authority = f"{shown}@{host}"
    if question:
        query = "&".join(_redacted_query_pair(pair) for pair in query.split("&"))
    return f"{scheme}{separator}{authority}{slash}{path}{question}{query}"


def _redacted_query_pair(pair: str) -> str:
    name, equals, _value = pair.partition("=")
    if urllib.parse.unquote_plus(name).strip().lower() in SECRET_CONNECTION_PARAMETERS:
        return f"{name}=***"
    return pair
