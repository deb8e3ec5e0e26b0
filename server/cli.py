"""The `csdp` command: run the server, mint development tokens, rebuild and verify projections."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import ipaddress
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from shared_schema import HUMAN_ROLES, Role, transition_table_json

from .config import ConfigError, Settings

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


# Development tokens are for a bench; a year is long enough and keeps the expiry a valid date.
MAX_TOKEN_TTL_HOURS = 24 * 366


def _settings(var_dir: Path | None, database_url: str | None = None, **overrides: object) -> Settings:
    try:
        return Settings.from_env(var_dir=var_dir, database_url=database_url, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """CNC-FSM Core: offline-first sync server for field service on CNC machines."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port to listen on.")
@click.option("--var-dir", type=click.Path(path_type=Path), help="Folder for the database and keys [env: CSDP_VAR_DIR].")
@click.option(
    "--database-url", help="Store location, sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE [env: CSDP_DATABASE_URL]."
)
@click.option("--demo", is_flag=True, help="Load a small demo catalog and open orders into an empty store.")
@click.option(
    "--allow-dev-auth-on-network",
    is_flag=True,
    default=None,
    help="Accept development tokens on a non-loopback address, with a warning at every start "
    "[env: CSDP_ALLOW_DEV_AUTH_ON_NETWORK].",
)
@click.option("--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def serve(
    host: str,
    port: int,
    var_dir: Path | None,
    database_url: str | None,
    demo: bool,
    allow_dev_auth_on_network: bool | None,
    log_level: str,
) -> None:
    """Run the sync server."""
    _require_server_extra()
    import structlog
    import uvicorn

    from .app import create_app
    from .logging import configure_logging

    settings = _settings(var_dir, database_url, allow_dev_auth_on_network=allow_dev_auth_on_network)
    configure_logging(log_level)
    _warn_unknown_variables()
    if settings.dev_auth_enabled and not _is_loopback(host):
        if not settings.allow_dev_auth_on_network:
            raise click.ClickException(
                f"refusing to accept development tokens on the non-loopback address {host}: anyone who reads "
                f"{settings.dev_key_path} can sign any role. Either configure the identity provider "
                "(CSDP_JWKS_URL or CSDP_JWT_PUBLIC_KEY_FILE, with CSDP_JWT_ISSUER; development tokens are then off), "
                "or listen on --host 127.0.0.1, or pass --allow-dev-auth-on-network for a test bench"
            )
        warning = (
            f"WARNING: development tokens are accepted on the non-loopback address {host}; "
            "configure an identity provider before real use"
        )
        # Printed as well as logged, so that --log-level ERROR cannot hide it.
        click.echo(warning, err=True)
        structlog.get_logger("csdp.security").warning("dev_auth_on_network", host=host, message=warning)
    _check_store(settings)
    _check_blob_store(settings)
    try:
        app = create_app(settings, demo=demo)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    # A larger header limit than h11's 16 KiB, so an oversized token reaches the
    # server's own check and gets its 401 instead of a bare 400.
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False, h11_max_incomplete_event_size=64 * 1024
    )


def _warn_unknown_variables() -> None:
    """Print and log each CSDP_* variable that is not a setting, because a misspelt name is otherwise ignored."""
    import structlog

    from .unknown_variables import unknown_variable_warnings

    for warning in unknown_variable_warnings(os.environ):
        click.echo(f"WARNING: {warning}", err=True)
        structlog.get_logger("csdp.config").warning("unknown_setting_variable", message=warning)


def _check_store(settings: Settings) -> None:
    """Open and close the store once, so a missing database or an old schema stops the start with its message."""
    from .store import StoreError, create_store

    async def probe() -> None:
        store = create_store(settings)
        await store.open()
        await store.close()

    try:
        asyncio.run(probe())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _check_blob_store(settings: Settings) -> None:
    """Open and close the blob store once, so a missing bucket or folder stops the start with one line.

    The app's start-up opens it again; a failure there still stops the server, but uvicorn then
    prints the traceback of its lifespan task as well.
    """
    from .blobs import BlobStoreError, create_blob_store

    async def probe() -> None:
        blob_store = create_blob_store(settings)
        await blob_store.open()
        await blob_store.close()

    try:
        asyncio.run(probe())
    except (BlobStoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--database-url", help="Store location [env: CSDP_DATABASE_URL].")
@click.option("--var-dir", type=click.Path(path_type=Path), help="Folder of the embedded store [env: CSDP_VAR_DIR].")
def migrate(database_url: str | None, var_dir: Path | None) -> None:
    """Apply pending schema migrations to the configured store."""
    _require_server_extra()
    from .store import StoreError, create_store

    settings = _settings(var_dir, database_url)
    store = create_store(settings)

    async def run() -> None:
        await store.open(migrate=True)
        await store.close()

    try:
        asyncio.run(run())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{store.description}: the schema is current")


def _require_server_extra() -> None:
    """Stop with an install hint when the server's packages are missing (a client-only install)."""
    packages = ("uvicorn", "litestar", "jwt", "asyncpg", "rich", "prometheus_client")
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"this command needs the server packages, missing: {', '.join(missing)}; "
            "install them with: pip install 'cnc-fsm-core[server]'"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option("--role", required=True, type=click.Choice([role.value for role in HUMAN_ROLES]), help="Role claim of the token.")
@click.option("--subject", required=True, help="Subject (user id) of the token.")
@click.option("--engineer-id", help="Engineer id claim; defaults to the subject for engineers.")
@click.option(
    "--ttl-hours",
    default=12.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True, max=MAX_TOKEN_TTL_HOURS),
    help=f"Lifetime in hours, at most {MAX_TOKEN_TTL_HOURS} (one year).",
)
@click.option("--var-dir", type=click.Path(path_type=Path), help="Folder with the development key [env: CSDP_VAR_DIR].")
def token(role: str, subject: str, engineer_id: str | None, ttl_hours: float, var_dir: Path | None) -> None:
    """Print a bearer token signed with the development key."""
    _require_server_extra()
    from .security import mint_dev_token

    if not subject.strip():
        raise click.BadParameter("must not be empty", param_hint="--subject")
    if not math.isfinite(ttl_hours):
        raise click.BadParameter(f"{ttl_hours} is not a number of hours", param_hint="--ttl-hours")
    settings = _settings(var_dir)
    if not settings.dev_auth_enabled:
        raise click.ClickException(
            "development tokens are off in this configuration (an identity provider is set, or CSDP_DEV_AUTH=false); "
            "get a token from the identity provider instead"
        )
    key_existed = settings.dev_key_path.exists()
    try:
        value = mint_dev_token(
            settings, subject=subject, role=Role(role), engineer_id=engineer_id, ttl=dt.timedelta(hours=ttl_hours)
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not key_existed:
        click.echo(
            f"Created a new development key at {settings.dev_key_path}; a server with another "
            "CSDP_VAR_DIR rejects this token.",
            err=True,
        )
    click.echo(value)


@main.group()
def projections() -> None:
    """Rebuild or verify the projections from the event log, the decisions and the catalog events.

    Projections: work_orders_current, work_order_timeline, event_audience (from the event log and
    the decisions), kpi_order_history (from the accepted events, up to the KPI projector's
    checkpoint), engineers, sites, assets, contracts (from catalog_events).
    """


_DATABASE_URL_OPTION = click.option("--database-url", help="Store location [env: CSDP_DATABASE_URL].")
_VAR_DIR_OPTION = click.option(
    "--var-dir", type=click.Path(path_type=Path), help="Folder of the embedded store [env: CSDP_VAR_DIR]."
)
_BATCH_SIZE_OPTION = click.option(
    "--batch-size",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Decisions read from the log per query.",
)


@projections.command("rebuild")
@click.argument("names", nargs=-1)
@_DATABASE_URL_OPTION
@_VAR_DIR_OPTION
@_BATCH_SIZE_OPTION
def projections_rebuild(
    names: tuple[str, ...], database_url: str | None, var_dir: Path | None, batch_size: int
) -> None:
    """Rebuild the NAMES projections (all when none is given) from the log, replacing their rows.

    Each projection is replaced in one transaction, during which appends wait.
    """
    _require_server_extra()
    from .projections.console import run_rebuild

    selected = _projection_names(names)
    settings = _settings(var_dir, database_url)
    result = _run_projection_command(lambda console: run_rebuild(settings, selected, batch_size, console))
    if result.projections:
        click.echo(
            f"rebuilt {', '.join(result.projections)} from {result.decisions} decisions and {result.events} events"
            f" ({result.orders} work orders)"
        )
    if result.catalog_projections:
        click.echo(f"rebuilt {', '.join(result.catalog_projections)} from {result.catalog_events} catalog events")


@projections.command("verify")
@click.argument("names", nargs=-1)
@_DATABASE_URL_OPTION
@_VAR_DIR_OPTION
@_BATCH_SIZE_OPTION
@click.option(
    "--max-differences",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Differences listed per projection.",
)
def projections_verify(
    names: tuple[str, ...], database_url: str | None, var_dir: Path | None, batch_size: int, max_differences: int
) -> None:
    """Rebuild the NAMES projections (all when none is given) into scratch tables and compare them with the live ones.

    Exits 0 when every projection is equal and 1 when one differs, listing the differences.
    """
    _require_server_extra()
    from .projections.console import format_report, run_verify

    selected = _projection_names(names)
    settings = _settings(var_dir, database_url)
    reports = _run_projection_command(
        lambda console: run_verify(settings, selected, batch_size, max_differences, console)
    )
    for report in reports:
        for line in format_report(report):
            click.echo(line)
    if not all(report.equal for report in reports):
        sys.exit(1)


def _projection_names(names: tuple[str, ...]) -> tuple[str, ...]:
    from .projections.names import UnknownProjection, select_projections

    try:
        return select_projections(names)
    except UnknownProjection as exc:
        raise click.UsageError(str(exc)) from exc


def _run_projection_command(work: Callable[[Console], T]) -> T:
    """Run `work` with a console for the progress bar on stderr, turning store and replay errors into messages."""
    from rich.console import Console

    from .projections.fold import ReplayError
    from .projections.run import LogChanged
    from .store import StoreError

    try:
        return work(Console(stderr=True))
    except (StoreError, ReplayError, LogChanged) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def transitions() -> None:
    """Print the work-order state machine as JSON."""
    sys.stdout.write(transition_table_json().decode() + "\n")


@main.group()
def contract() -> None:
    """Export the language-neutral SDK contract."""


@contract.command("export")
@click.argument("target", metavar="DIR", type=click.Path(path_type=Path))
def contract_export(target: Path) -> None:
    """Write the JSON Schemas, transition table, reason codes and conformance vectors into DIR.

    The checked-in copy lives in shared_schema/contract; refresh it with
    `csdp contract export shared_schema/contract`.
    """
    from .contract.export import ExportError, export_contract

    try:
        written = export_contract(target)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {len(written)} files into {target}")



# Registered last: these commands import the helpers above.
from .cli_operations import backup, config, restore  # noqa: E402

main.add_command(backup)
main.add_command(restore)
main.add_command(config)


if __name__ == "__main__":
    main()
