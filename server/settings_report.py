"""The effective settings as `csdp config show` prints them: each variable, its value, its source, secrets hidden."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from .config import Settings, redact_url

# Every Settings field and the environment variable that sets it.
SETTING_VARIABLES = {
    "var_dir": "CSDP_VAR_DIR",
    "database_url": "CSDP_DATABASE_URL",
    "max_batch_events": "CSDP_MAX_BATCH_EVENTS",
    "max_body_bytes": "CSDP_MAX_BODY_BYTES",
    "clock_skew_tolerance_seconds": "CSDP_CLOCK_SKEW_TOLERANCE_SECONDS",
    "dev_auth": "CSDP_DEV_AUTH",
    "allow_dev_auth_on_network": "CSDP_ALLOW_DEV_AUTH_ON_NETWORK",
    "jwks_url": "CSDP_JWKS_URL",
    "jwt_public_key_file": "CSDP_JWT_PUBLIC_KEY_FILE",
    "jwt_algorithms": "CSDP_JWT_ALGORITHMS",
    "jwt_issuer": "CSDP_JWT_ISSUER",
    "jwt_audience": "CSDP_JWT_AUDIENCE",
    "jwt_leeway_seconds": "CSDP_JWT_LEEWAY_SECONDS",
    "role_claim": "CSDP_ROLE_CLAIM",
    "engineer_claim": "CSDP_ENGINEER_CLAIM",
    "jwks_cache_seconds": "CSDP_JWKS_CACHE_SECONDS",
    "jwks_min_refresh_seconds": "CSDP_JWKS_MIN_REFRESH_SECONDS",
    "sla_clock_seconds": "CSDP_SLA_CLOCK_SECONDS",
    "rate_limit_per_minute": "CSDP_RATE_LIMIT_PER_MINUTE",
    "rate_limit_burst": "CSDP_RATE_LIMIT_BURST",
    "blob_backend": "CSDP_BLOB_BACKEND",
    "blob_dir": "CSDP_BLOB_DIR",
    "blob_max_bytes": "CSDP_BLOB_MAX_BYTES",
    "blob_s3_bucket": "CSDP_BLOB_S3_BUCKET",
    "blob_s3_endpoint_url": "CSDP_BLOB_S3_ENDPOINT_URL",
    "blob_s3_region": "CSDP_BLOB_S3_REGION",
    "blob_s3_prefix": "CSDP_BLOB_S3_PREFIX",
    "blob_s3_access_key_id": "CSDP_BLOB_S3_ACCESS_KEY_ID",
    "blob_s3_secret_access_key": "CSDP_BLOB_S3_SECRET_ACCESS_KEY",
    "live_poll_seconds": "CSDP_LIVE_POLL_SECONDS",
    "live_heartbeat_seconds": "CSDP_LIVE_HEARTBEAT_SECONDS",
    "live_buffer_messages": "CSDP_LIVE_BUFFER_MESSAGES",
    "live_listener_check_seconds": "CSDP_LIVE_LISTENER_CHECK_SECONDS",
    "db_pool_min_size": "CSDP_DB_POOL_MIN_SIZE",
    "db_pool_max_size": "CSDP_DB_POOL_MAX_SIZE",
    "metrics_token": "CSDP_METRICS_TOKEN",
    "otel_enabled": "CSDP_OTEL_ENABLED",
    "otel_service_name": "CSDP_OTEL_SERVICE_NAME",
}
# Values printed only as "***" when set.
SECRET_FIELDS = frozenset({"metrics_token", "blob_s3_secret_access_key"})
HIDDEN = "***"


@dataclasses.dataclass(frozen=True)
class SettingLine:
    variable: str
    value: str
    source: str
    """"cli" for an option, "env" for an environment variable, "default" otherwise."""


def effective_settings(
    settings: Settings, environ: Mapping[str, str] | None = None, cli_fields: frozenset[str] = frozenset()
) -> list[SettingLine]:
    """Return one line per setting, in declaration order, with secrets hidden."""
    env = os.environ if environ is None else environ
    lines = []
    for field in dataclasses.fields(Settings):
        variable = SETTING_VARIABLES[field.name]
        if field.name in cli_fields:
            source = "cli"
        elif variable in env:
            source = "env"
        else:
            source = "default"
        lines.append(SettingLine(variable, _displayed(field.name, getattr(settings, field.name)), source))
    lines.append(SettingLine("effective database", redact_url(settings.effective_database_url), "derived"))
    lines.append(SettingLine("development tokens", "on" if settings.dev_auth_enabled else "off", "derived"))
    return lines


def _displayed(field: str, value: object) -> str:
    if value is None:
        return "unset"
    if field in SECRET_FIELDS:
        return HIDDEN if value else ""
    if field == "database_url":
        return redact_url(str(value))
    if field == "jwks_url":
        return redact_url(str(value), hide_bare_user=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
