"""examples/technician_day.py runs a whole day, with its own server or against a running one."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "technician_day.py"


@pytest.fixture
def store_kind() -> str:
    """Run this module on SQLite only."""
    return "sqlite"


def load_example():
    spec = importlib.util.spec_from_file_location("technician_day", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_starts_own_server():
    result = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rolled back: cancelled_meanwhile" in result.stdout
    assert "tablet agrees" in result.stdout
    assert "DIFFERS" not in result.stdout
    assert result.stdout.strip().endswith("the tablet and the server agree")


def test_example_against_running_server(live_server, tmp_path, capsys):
    example = load_example()

    code = example.main(
        ["--server-url", live_server.base_url, "--var-dir", str(live_server.settings.var_dir), "--workdir", str(tmp_path)]
    )

    output = capsys.readouterr().out
    assert code == 0, output
    assert "started a server" not in output
    assert "end of day: pending 0, rejected 1" in output


def test_example_url_without_var_dir(capsys):
    example = load_example()

    with pytest.raises(SystemExit) as exited:
        example.main(["--server-url", "http://127.0.0.1:9"])

    assert exited.value.code == 2
    assert "--server-url needs --var-dir" in capsys.readouterr().err


def test_example_var_dir_without_key(tmp_path, capsys):
    example = load_example()

    with pytest.raises(SystemExit) as exited:
        example.main(["--server-url", "http://127.0.0.1:9", "--var-dir", str(tmp_path)])

    assert exited.value.code == 2
    assert "has no dev-jwt-key" in capsys.readouterr().err


def closed_port() -> int:
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_example_unreachable_server(live_server, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"

    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--server-url", url, "--var-dir", str(live_server.settings.var_dir), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: the server at {url} is not reachable")
    assert line.endswith("start it or check --server-url")


def test_example_url_not_a_server(live_server, tmp_path, capsys):
    example = load_example()
    url = f"{live_server.base_url}/not-the-api"

    code = example.main(["--server-url", url, "--var-dir", str(live_server.settings.var_dir), "--workdir", str(tmp_path)])

    [line] = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith(f"error: the server at {url} rejected a request")
    assert "404" in line


def test_example_url_without_scheme(live_server, capsys):
    example = load_example()

    with pytest.raises(SystemExit) as exited:
        example.main(["--server-url", "127.0.0.1:9", "--var-dir", str(live_server.settings.var_dir)])

    assert exited.value.code == 2
    assert "must start with http:// or https://" in capsys.readouterr().err
