"""The operations commands of `csdp`: `backup`, `restore` and `config show`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .config import Settings


# The helpers live in server.cli, which imports this module at its end. They are
# imported when a command runs, so `python -m server.cli` (where server.cli is
# __main__ and not yet complete) can load this module.
def _settings(var_dir: Path | None, database_url: str | None = None) -> Settings:
    from .cli import _settings as settings_from_environment

    return settings_from_environment(var_dir, database_url)


def _require_server_extra() -> None:
    from .cli import _require_server_extra as require

    require()

_DATABASE_URL_OPTION = click.option("--database-url", help="Store location [env: CSDP_DATABASE_URL].")
_VAR_DIR_OPTION = click.option(
    "--var-dir", type=click.Path(path_type=Path), help="Folder of the embedded store [env: CSDP_VAR_DIR]."
)
_BATCH_SIZE_OPTION = click.option(
    "--batch-size",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1, max=100_000),
    help="Rows read or written per query.",
)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_DATABASE_URL_OPTION
@_VAR_DIR_OPTION
@_BATCH_SIZE_OPTION
def backup(file: Path, database_url: str | None, var_dir: Path | None, batch_size: int) -> None:
    """Write a consistent snapshot of the store into FILE, a new gzip-compressed JSON-lines file.

    The snapshot contains the event log, the decisions, the catalog events, the audit of denied
    requests and the projectors' checkpoints, read in one transaction while the server runs.
    """
    _require_server_extra()
    from rich.console import Console

    from .backup.archive import BackupError
    from .backup.run import run_backup
    from .store import StoreError

    settings = _settings(var_dir, database_url)
    try:
        writer = run_backup(settings, file, batch_size, Console(stderr=True))
    except (BackupError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    counts = ", ".join(f"{count} {name}" for name, count in writer.counts.items())
    click.echo(f"wrote {file}: {counts}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_DATABASE_URL_OPTION
@_VAR_DIR_OPTION
@_BATCH_SIZE_OPTION
def restore(file: Path, database_url: str | None, var_dir: Path | None, batch_size: int) -> None:
    """Load the backup FILE into an empty store, then rebuild every projection.

    The file is checked whole (format, columns, row counts, SHA-256) before anything is written,
    and the rows are loaded in one transaction. A store that already contains records is rejected.
    """
    _require_server_extra()
    from rich.console import Console

    from .backup.archive import BackupError
    from .backup.run import run_restore
    from .projections.fold import ReplayError
    from .projections.run import LogChanged
    from .store import StoreError

    settings = _settings(var_dir, database_url)
    try:
        result = run_restore(settings, file, batch_size, Console(stderr=True))
    except (BackupError, StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    except (ReplayError, LogChanged) as exc:
        raise click.ClickException(
            f"the records were restored but rebuilding the projections failed: {exc}; "
            "run csdp projections rebuild against the same store"
        ) from exc
    counts = ", ".join(f"{count} {name}" for name, count in result.counts.items())
    click.echo(f"restored {counts} from {file} (a {result.source} store at schema version {result.schema_version})")
    click.echo(f"rebuilt {', '.join(result.rebuild.projections + result.rebuild.catalog_projections)}")


@click.group()
def config() -> None:
    """Inspect the server's settings."""


@config.command("show")
@_DATABASE_URL_OPTION
@_VAR_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of lines.")
def config_show(database_url: str | None, var_dir: Path | None, as_json: bool) -> None:
    """Print the effective settings from the environment and these options, with secrets hidden.

    Each line is VARIABLE=VALUE and its source: cli, env or default. Invalid settings stop
    the command with the message that stops the server.
    """
    from .settings_report import effective_settings
    from .unknown_variables import unknown_variable_warnings

    settings = _settings(var_dir, database_url)
    # Printed to stderr, so that the settings on stdout stay parseable.
    for warning in unknown_variable_warnings(os.environ):
        click.echo(f"WARNING: {warning}", err=True)
    cli_fields = frozenset(name for name, value in (("var_dir", var_dir), ("database_url", database_url)) if value is not None)
    lines = effective_settings(settings, cli_fields=cli_fields)
    if as_json:
        click.echo(json.dumps({line.variable: {"value": line.value, "source": line.source} for line in lines}, indent=2))
        return
    settings_lines = [line for line in lines if line.source != "derived"]
    width = max(len(line.variable) + len(line.value) for line in settings_lines) + 1
    for line in settings_lines:
        click.echo(f"{line.variable}={line.value}".ljust(width) + f"  # {line.source}")
    for line in lines:
        if line.source == "derived":
            click.echo(f"# {line.variable}: {line.value}")
