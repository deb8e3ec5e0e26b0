"""The server a fleet run talks to, with its store: started before the run and cleaned up after it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from server.config import redact_url

from .postgres_cluster import PrivateCluster
from .scenario import Scenario
from .server_process import ServerProcess


class RunSetupError(SystemExit):
    """The run could not start: a bad database URL, a server that rejects the tokens, a cluster that fails."""

    exit_status = 1


class ServerUnreachable(RunSetupError):
    """Error for a --server-url that cannot be reached. It is an option error, so the exit status is 2."""

    exit_status = 2


@dataclasses.dataclass
class Target:
    """Server address of a run, and the server, schema and cluster to clean up afterwards."""

    base_url: str
    var_dir: Path
    server: ServerProcess | None = None
    cluster: PrivateCluster | None = None
    admin_database_url: str | None = None
    schema: str | None = None
    database_url: str | None = None

    store: str = "sqlite"

    @property
    def store_label(self) -> str:
        """The store as the --store option names it, or "external server" for a server given with --server-url."""
        return "external server" if self.server is None else self.store

    def environment(self) -> dict[str, str]:
        """Environment for `csdp` commands that must open the same store as the server.

        For a server given with --server-url the store is its --var-dir, or
        the --database-url given with it, or else the CSDP_DATABASE_URL of
        this process, as `csdp` itself would take.
        """
        environment = {**os.environ, "CSDP_VAR_DIR": str(self.var_dir)}
        if self.database_url:
            environment["CSDP_DATABASE_URL"] = self.database_url
        elif self.server is not None:
            environment.pop("CSDP_DATABASE_URL", None)
        return environment


@dataclasses.dataclass
class RunOptions:
    scenario: Scenario
    database_url: str | None = None
    server_url: str | None = None
    var_dir: Path | None = None
    keep_files: bool = False
    show_progress: bool = True
    run_token: str | None = None

    @property
    def order_prefix(self) -> str:
        """Prefix of the run's order ids: a run token keeps the orders of two runs on one server apart."""
        return f"wo-{self.run_token}-" if self.run_token else "wo-"


def start_target(options: RunOptions, workdir: Path) -> Target:
    scenario = options.scenario
    var_dir = options.var_dir or workdir / "server"
    if options.server_url:
        # A running server's store is its var folder, or the PostgreSQL database given with it.
        return Target(base_url=options.server_url, var_dir=var_dir, database_url=options.database_url)

    target = Target(base_url="", var_dir=var_dir, store=scenario.store)
    if scenario.store == "postgres-private":
        # Its own temporary folder, because the postgres user cannot enter the run folder, which is private to us.
        target.cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="csdp-fleet-postgres-")))
        try:
            target.cluster.start()
        except RuntimeError as exc:
            raise RunSetupError(f"the private PostgreSQL cluster did not start: {exc}") from None
        target.database_url = target.cluster.url
    elif scenario.store == "postgres":
        if not options.database_url:
            raise RunSetupError(
                "store postgres needs --database-url or CSDP_DATABASE_URL, "
                "e.g. postgresql://postgres@127.0.0.1:5432/postgres"
            )
        target.admin_database_url = options.database_url
        target.schema = f"fleet_{scenario.seed}_{uuid.uuid4().hex[:8]}"
        target.database_url = create_schema(options.database_url, target.schema)

    target.server = ServerProcess(var_dir, database_url=target.database_url)
    target.base_url = target.server.base_url
    try:
        target.server.start()
    except RuntimeError as exc:
        stop_target(target, keep=False)
        raise RunSetupError(f"the server did not start: {exc}") from None
    return target


def stop_target(target: Target, keep: bool) -> None:
    if target.server is not None:
        target.server.stop()
    if target.schema is not None and target.admin_database_url is not None:
        if keep:
            print(f"schema of this run: {target.schema} in {redact_url(target.admin_database_url)}", file=sys.stderr)
        else:
            drop_schema(target.admin_database_url, target.schema)
    if target.cluster is not None:
        if keep:
            target.cluster.stop()
            print(f"data folder of the private PostgreSQL cluster: {target.cluster.data_dir}", file=sys.stderr)
        else:
            target.cluster.destroy()


def create_schema(database_url: str, schema: str) -> str:
    """Create a schema for one run and return the URL that selects it."""
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise RunSetupError(f"--database-url {redact_url(database_url)!r} is invalid: expected postgresql://USER@HOST:PORT/DATABASE")
    try:
        asyncio.run(_execute(database_url, f"CREATE SCHEMA {schema}"))
    except (OSError, ValueError, asyncpg.PostgresError) as exc:
        raise RunSetupError(f"--database-url {redact_url(database_url)!r} is not usable: {exc}") from None
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}search_path={schema}"


def drop_schema(database_url: str, schema: str) -> None:
    asyncio.run(_execute(database_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


async def _execute(database_url: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
