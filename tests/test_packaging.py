"""Package boundaries: the contract stays pure and the client installs without the server."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CONTRACT = {"os", "socket", "sqlite3", "time", "logging", "httpx", "asyncio", "threading", "random", "server", "client_sdk"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_contract_imports_no_io_module():
    for path in sorted((ROOT / "shared_schema").glob("*.py")):
        forbidden = _imported_modules(path) & FORBIDDEN_IN_CONTRACT
        assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def test_contract_reads_no_clock():
    for path in sorted((ROOT / "shared_schema").glob("*.py")):
        text = path.read_text()
        assert ".now(" not in text, f"{path.name} reads the clock"
        assert "uuid4(" not in text, f"{path.name} makes random ids"


def test_client_import_skips_server_packages():
    code = "import sys, client_sdk; print(sorted(m for m in sys.modules if m.split('.')[0] in ('litestar', 'server', 'uvicorn', 'jwt')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_client_extra_has_no_server_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = " ".join(project["optional-dependencies"]["client"]).lower()
    for server_only in ("litestar", "uvicorn", "pyjwt", "asyncpg"):
        assert server_only not in client
    assert project["dependencies"] == ["msgspec>=0.18"]


def test_console_script_points_to_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["csdp"] == "server.cli:main"
