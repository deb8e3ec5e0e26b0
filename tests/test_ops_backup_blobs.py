"""The attachment index in a backup: a blob uploaded on SQLite downloads after a restore into PostgreSQL."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import Clients
from conftest import LiveServer, new_postgres_database, start_server, stop_server
from test_cli import CSDP

from server.config import Settings

ENGINEER = "e-1"


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


@pytest.fixture
def target_database() -> Iterator[str]:
    with new_postgres_database("csdp_blob_restore") as url:
        yield url


def run(var_dir: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CSDP_VAR_DIR": str(var_dir)}
    environment.pop("CSDP_DATABASE_URL", None)
    if database_url:
        environment["CSDP_DATABASE_URL"] = database_url
    return subprocess.run([str(CSDP), *args], env=environment, capture_output=True, text=True, timeout=120)


def serving(settings: Settings) -> Iterator[Clients]:
    server, thread, base_url = start_server(settings)
    clients = Clients(LiveServer(base_url=base_url, settings=settings))
    try:
        yield clients
    finally:
        clients.close()
        stop_server(server, thread)


def engineer(clients: Clients) -> httpx.Client:
    return clients.anonymous(headers={"Authorization": f"Bearer {clients.live.token('engineer', ENGINEER, ENGINEER)}"})


def upload(http: httpx.Client, content: bytes) -> str:
    sha256 = hashlib.sha256(content).hexdigest()
    declared = http.post("/v1/blobs", json={"sha256": sha256, "size_bytes": len(content), "content_type": "image/jpeg"})
    assert declared.status_code == 200, declared.text
    sent = http.patch(
        f"/v1/blobs/{sha256}/upload",
        content=content,
        headers={"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert sent.json()["complete"] is True, sent.text
    return sha256


def backup_counts(path: Path) -> dict[str, int]:
    with gzip.open(path, "rb") as file:
        return json.loads(file.read().splitlines()[-1])["counts"]


def test_blob_survives_sqlite_to_postgres_move(tmp_path, target_database):
    var_dir = tmp_path / "var"
    content = os.urandom(50_000)
    backup = tmp_path / "site.csdp-backup"
    for clients in serving(Settings(var_dir=var_dir)):
        sha256 = upload(engineer(clients), content)

    written = run(var_dir, "backup", str(backup))
    restored = run(var_dir, "restore", str(backup), database_url=target_database)
    for clients in serving(Settings(var_dir=var_dir, database_url=target_database)):
        http = engineer(clients)
        download = http.get(f"/v1/blobs/{sha256}")
        declared = http.post("/v1/blobs", json={"sha256": sha256, "size_bytes": len(content), "content_type": "image/jpeg"})

    assert written.returncode == 0, written.stderr
    assert backup_counts(backup)["blobs"] == 1
    assert backup_counts(backup)["blob_uploaders"] == 1
    assert restored.returncode == 0, restored.stderr
    assert download.status_code == 200, download.text
    assert download.content == content
    assert declared.json()["complete"] is True
    assert declared.json()["offset"] == len(content)
