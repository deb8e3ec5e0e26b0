"""A private PostgreSQL 15 cluster for one simulator run, so the run can restart it without touching a shared one.

The cluster lives in a temporary folder, listens on a free loopback port with
trust authentication, and keeps its Unix socket in that folder. When the
simulator runs as root, initdb and pg_ctl run as the `postgres` user through
`runuser`, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from .server_process import free_port

BIN_DIR = Path(os.environ.get("CSDP_SIM_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresClusterError(RuntimeError):
    """initdb or pg_ctl failed; the message carries their output."""


class PrivateCluster:
    """A PostgreSQL cluster in `folder`, started with `start()` and removed with `destroy()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data_dir = folder / "data"
        self.socket_dir = folder / "socket"
        self.log_path = folder / "postgres.log"
        self.port = free_port()
        self._run_as = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *arguments: str) -> list[str]:
        if self._run_as is None:
            return list(arguments)
        return ["runuser", "-u", self._run_as, "--", *arguments]

    def _run(self, *arguments: str, timeout: float = 120) -> None:
        try:
            result = subprocess.run(self._command(*arguments), capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as exc:
            raise PostgresClusterError(f"{arguments[0]} not found: {exc}; set CSDP_SIM_PG_BIN to PostgreSQL's bin folder") from None
        if result.returncode != 0:
            raise PostgresClusterError(
                f"{Path(arguments[0]).name} {' '.join(arguments[1:3])} failed with code {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-1000:]}"
            )

    def start(self) -> None:
        """Create the cluster on first use and start it."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            user = pwd.getpwnam(self._run_as)
            for path in (self.folder, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        if not self.data_dir.exists():
            self._run(
                str(BIN_DIR / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"
            )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c fsync=off"
        self._run(str(BIN_DIR / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run(str(BIN_DIR / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop the cluster with `immediate` (no clean shutdown, like a crash) and start it again."""
        self.stop(mode="immediate")
        self.start()

    def destroy(self) -> None:
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
