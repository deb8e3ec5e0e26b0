"""Settings from the environment: every invalid value stops the start with a message naming its variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from identity_provider import new_private_key, public_pem

from server.app import create_app
from server.config import ConfigError, Settings, redact_url
from server.logging import configure_logging

BAD_VALUES = [
    ("CSDP_JWT_LEEWAY_SECONDS", "nan", "CSDP_JWT_LEEWAY_SECONDS='nan' is invalid"),
    ("CSDP_JWT_LEEWAY_SECONDS", "inf", "CSDP_JWT_LEEWAY_SECONDS='inf' is invalid"),
    ("CSDP_JWT_LEEWAY_SECONDS", "1e308", "CSDP_JWT_LEEWAY_SECONDS=1e+308 is invalid: expected a number of seconds from 0 to 3600"),
    ("CSDP_JWKS_CACHE_SECONDS", "nan", "CSDP_JWKS_CACHE_SECONDS='nan' is invalid"),
    ("CSDP_JWKS_MIN_REFRESH_SECONDS", "inf", "CSDP_JWKS_MIN_REFRESH_SECONDS='inf' is invalid"),
    ("CSDP_CLOCK_SKEW_TOLERANCE_SECONDS", "-inf", "CSDP_CLOCK_SKEW_TOLERANCE_SECONDS='-inf' is invalid"),
    ("CSDP_CLOCK_SKEW_TOLERANCE_SECONDS", "1e12", "CSDP_CLOCK_SKEW_TOLERANCE_SECONDS=1000000000000.0 is invalid"),
    ("CSDP_RATE_LIMIT_BURST", "0", "CSDP_RATE_LIMIT_BURST='0' is invalid: expected a whole number greater than 0"),
    ("CSDP_JWKS_URL", "http://127.0.0.1:99999/jwks", "CSDP_JWKS_URL='http://127.0.0.1:99999/jwks' is invalid"),
    ("CSDP_JWKS_URL", "http://", "CSDP_JWKS_URL='http://' is invalid: expected https://HOST"),
    ("CSDP_JWKS_URL", "http://127.0.0.1 :8/jwks", "CSDP_JWKS_URL='http://127.0.0.1 :8/jwks' is invalid"),
    ("CSDP_JWKS_URL", "http://127.0.0.1:0/jwks", "port 0 cannot be connected to"),
    ("CSDP_JWKS_URL", "http://user:secret@:8/jwks", "CSDP_JWKS_URL='http://user:***@:8/jwks' is invalid"),
    ("CSDP_LIVE_POLL_SECONDS", "0", "CSDP_LIVE_POLL_SECONDS=0.0 is invalid: expected a number of seconds from 0.01 to 3600"),
    ("CSDP_LIVE_POLL_SECONDS", "soon", "CSDP_LIVE_POLL_SECONDS='soon' is invalid"),
    ("CSDP_LIVE_HEARTBEAT_SECONDS", "nan", "CSDP_LIVE_HEARTBEAT_SECONDS='nan' is invalid"),
    ("CSDP_LIVE_HEARTBEAT_SECONDS", "7200", "CSDP_LIVE_HEARTBEAT_SECONDS=7200.0 is invalid: expected a number of seconds from 0.1 to 3600"),
    ("CSDP_LIVE_LISTENER_CHECK_SECONDS", "0.01", "CSDP_LIVE_LISTENER_CHECK_SECONDS=0.01 is invalid"),
    ("CSDP_LIVE_BUFFER_MESSAGES", "0", "CSDP_LIVE_BUFFER_MESSAGES='0' is invalid: expected a whole number greater than 0"),
    ("CSDP_LIVE_BUFFER_MESSAGES", "many", "CSDP_LIVE_BUFFER_MESSAGES='many' is invalid"),
    ("CSDP_SLA_CLOCK_SECONDS", "0.0001", "CSDP_SLA_CLOCK_SECONDS=0.0001 is invalid: expected 0 (off) or a number of seconds from 0.1 to 86400"),
    ("CSDP_SLA_CLOCK_SECONDS", "0.09", "CSDP_SLA_CLOCK_SECONDS=0.09 is invalid"),
    ("CSDP_SLA_CLOCK_SECONDS", "86401", "CSDP_SLA_CLOCK_SECONDS=86401.0 is invalid"),
    ("CSDP_MAX_BATCH_EVENTS", "99999999999999999999", "CSDP_MAX_BATCH_EVENTS=99999999999999999999 is invalid: expected a whole number from 1 to 10000"),
    ("CSDP_MAX_BATCH_EVENTS", "10001", "CSDP_MAX_BATCH_EVENTS=10001 is invalid"),
    ("CSDP_MAX_BODY_BYTES", "1073741825", "CSDP_MAX_BODY_BYTES=1073741825 is invalid: expected a whole number from 1 to 1073741824"),
    ("CSDP_RATE_LIMIT_PER_MINUTE", "1000001", "CSDP_RATE_LIMIT_PER_MINUTE=1000001 is invalid"),
    ("CSDP_RATE_LIMIT_BURST", "1000001", "CSDP_RATE_LIMIT_BURST=1000001 is invalid"),
    ("CSDP_LIVE_BUFFER_MESSAGES", "1000001", "CSDP_LIVE_BUFFER_MESSAGES=1000001 is invalid"),
    ("CSDP_DB_POOL_MIN_SIZE", "1001", "CSDP_DB_POOL_MIN_SIZE=1001 is invalid: expected a whole number from 0 to 1000"),
    ("CSDP_DB_POOL_MAX_SIZE", "1001", "CSDP_DB_POOL_MAX_SIZE=1001 is invalid"),
    ("CSDP_BLOB_MAX_BYTES", "5497558138881", "CSDP_BLOB_MAX_BYTES=5497558138881 is invalid"),
]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CSDP_SLA_CLOCK_SECONDS", "0"), ("CSDP_SLA_CLOCK_SECONDS", "0.1"), ("CSDP_MAX_BATCH_EVENTS", "10000"), ("CSDP_DB_POOL_MAX_SIZE", "1000")],
)
def test_boundary_value_accepted(tmp_path, variable, value):
    settings = Settings.from_env({"CSDP_VAR_DIR": str(tmp_path / "var"), variable: value})

    assert settings.validate() is None


@pytest.mark.parametrize(("variable", "value", "message"), BAD_VALUES, ids=[f"{v}={x}" for v, x, _ in BAD_VALUES])
def test_bad_value_names_variable(tmp_path, variable, value, message):
    environment = {"CSDP_VAR_DIR": str(tmp_path / "var"), variable: value}
    if variable == "CSDP_JWKS_URL":
        environment["CSDP_JWT_ISSUER"] = "http://127.0.0.1:9/realms/field"

    with pytest.raises(ConfigError) as failure:
        Settings.from_env(environment)

    assert message in str(failure.value)
    assert "secret" not in str(failure.value)


def test_live_settings_from_environment(tmp_path):
    settings = Settings.from_env(
        {
            "CSDP_VAR_DIR": str(tmp_path / "var"),
            "CSDP_LIVE_POLL_SECONDS": "0.5",
            "CSDP_LIVE_HEARTBEAT_SECONDS": "20",
            "CSDP_LIVE_BUFFER_MESSAGES": "250",
            "CSDP_LIVE_LISTENER_CHECK_SECONDS": "2",
        }
    )

    assert settings.live_poll_seconds == 0.5
    assert settings.live_heartbeat_seconds == 20
    assert settings.live_buffer_messages == 250
    assert settings.live_listener_check_seconds == 2


def test_public_key_without_matching_algorithm(tmp_path):
    key_file = tmp_path / "rsa.pem"
    key_file.write_bytes(public_pem(new_private_key("RS256")))
    settings = Settings.from_env(
        {
            "CSDP_VAR_DIR": str(tmp_path / "var"),
            "CSDP_JWT_PUBLIC_KEY_FILE": str(key_file),
            "CSDP_JWT_ISSUER": "http://127.0.0.1:9/realms/field",
            "CSDP_JWT_ALGORITHMS": "ES256",
        }
    )

    with pytest.raises(ConfigError) as failure:
        create_app(settings)

    assert "none of which is in CSDP_JWT_ALGORITHMS='ES256'" in str(failure.value)
    assert "RS256" in str(failure.value)


def test_dev_key_in_unwritable_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings(var_dir=blocker / "var", database_url=f"sqlite:///{tmp_path / 'csdp.sqlite3'}")

    with pytest.raises(ConfigError) as failure:
        create_app(settings)

    assert f"cannot read or create the development key {blocker / 'var' / 'dev-jwt-key'}" in str(failure.value)
    assert "set CSDP_VAR_DIR to a folder this user can write" in str(failure.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://fsm:s3cr3t@127.0.0.1:8/jwks", "http://fsm:***@127.0.0.1:8/jwks"),
        ("postgresql://app:pw@db:5432/csdp", "postgresql://app:***@db:5432/csdp"),
        ("http://127.0.0.1:8/jwks", "http://127.0.0.1:8/jwks"),
        ("http://tok3n@127.0.0.1:8/jwks", "http://***@127.0.0.1:8/jwks"),
        ("http://127.0.0.1:8/a@b", "http://127.0.0.1:8/a@b"),
        ("postgresql://app:pw@db/csdp?password=pw2", "postgresql://app:***@db/csdp?password=***"),
        ("postgresql://app@db/csdp?sslmode=require&PassWord=pw2", "postgresql://***@db/csdp?sslmode=require&PassWord=***"),
        ("postgresql://app@db/csdp?sslpassword=key&application_name=x", "postgresql://***@db/csdp?sslpassword=***&application_name=x"),
        ("postgresql://app@db?password=pw2", "postgresql://***@db?password=***"),
        ("host=db password=secret dbname=csdp", "host=db password=*** dbname=csdp"),
        ("host=db PASSWORD = 'two words' sslpassword=k", "host=db PASSWORD = *** sslpassword=***"),
    ],
)
def test_redact_url_hides_password(url, shown):
    assert redact_url(url, hide_bare_user=True) == shown


def test_defaults_are_valid(tmp_path):
    settings = Settings.from_env({"CSDP_VAR_DIR": str(tmp_path / "var")})

    assert settings.dev_auth_enabled
    assert settings.rate_limit_burst >= 1
    assert Path(settings.effective_database_url.removeprefix("sqlite:///")).name == "csdp.sqlite3"


def test_httpx_request_lines_not_logged():
    """httpx logs full URLs, passwords included, at INFO; the server keeps its own redacted lines."""
    configure_logging("INFO")
    try:
        level = logging.getLogger("httpx").getEffectiveLevel()
    finally:
        configure_logging("WARNING")

    assert level >= logging.WARNING


def test_redact_url_keeps_database_user():
    assert redact_url("postgresql://postgres@127.0.0.1:5432/csdp") == "postgresql://postgres@127.0.0.1:5432/csdp"
