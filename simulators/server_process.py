"""Run `csdp serve` as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server subprocess, a context manager.

    The store is the SQLite file in `var_dir`, or `database_url` when given
    (migrated with `csdp migrate` before the server starts). When the
    environment variable CSDP_SIM_SERVER_PLUGIN names a module, the server
    process imports it before the server starts; tests use this to run a
    deliberately broken server.
    """

    def __init__(
        self,
        var_dir: Path,
        *,
        database_url: str | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.var_dir = var_dir
        self.environment = environment or {}
        self.database_url = database_url
        self.port = port or free_port()
        self.log_path = log_path or var_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CSDP_VAR_DIR": str(self.var_dir), **self.environment}
        env.pop("CSDP_DATABASE_URL", None)
        if self.database_url:
            env["CSDP_DATABASE_URL"] = self.database_url
            migrate = subprocess.run(
                [sys.executable, "-m", "server.cli", "migrate"], env=env, capture_output=True, text=True, timeout=120
            )
            if migrate.returncode != 0:
                raise RuntimeError(f"csdp migrate failed: {migrate.stderr.strip()}")
        command = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        plugin = env.get("CSDP_SIM_SERVER_PLUGIN")
        if plugin:
            launcher = f"import importlib, sys; importlib.import_module({plugin!r}); from server.cli import main; sys.exit(main())"
            command = [sys.executable, "-c", launcher, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not respond on /health within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Send SIGKILL, as a crash or an out-of-memory kill would, and wait for the process to end."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
