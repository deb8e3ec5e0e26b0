"""examples/technician_day.py runs a whole day, with its own server or against a running one."""

from __future__ import annotations

import importlib.util
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
