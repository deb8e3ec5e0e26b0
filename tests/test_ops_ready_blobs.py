"""`GET /ready` and the blob store: a missing or read-only folder, and an S3 service that stops and starts."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.config import Settings
from simulators.seaweedfs import SeaweedServer


@pytest.fixture
def store_kind() -> str:
    """The blob store check does not depend on the database, so SQLite is enough."""
    return "sqlite"


def build(settings: Settings, **overrides: object):  # type: ignore[no-untyped-def]
    app = create_app(dataclasses.replace(settings, sla_clock_seconds=0.1, **overrides))  # type: ignore[arg-type]
    # Every probe in these tests reads the current state, not a cached result.
    app.state.readiness.blob_store_cache_seconds = 0.0
    return app


async def ready(client: AsyncTestClient) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await client.get("/ready")
    return response.status_code, response.json()


async def test_ready_checks_local_folder(settings):
    async with AsyncTestClient(build(settings)) as client:
        status, body = await ready(client)
        blob_dir = settings.effective_blob_dir
        shutil.rmtree(blob_dir)
        missing_status, missing_body = await ready(client)
        blob_dir.mkdir()
        again_status, _ = await ready(client)

    assert status == 200
    assert missing_status == 503
    assert missing_body["checks"]["blob_store"]["ok"] is False
    assert f"{blob_dir} does not exist" in missing_body["checks"]["blob_store"]["detail"]
    assert any(cause.startswith("blob_store: ") for cause in missing_body["not_ready"])
    assert again_status == 200


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
async def test_ready_fails_for_read_only_folder(settings):
    async with AsyncTestClient(build(settings)) as client:
        blob_dir = settings.effective_blob_dir
        blob_dir.chmod(0o555)
        try:
            status, body = await ready(client)
        finally:
            blob_dir.chmod(0o755)

    assert status == 503
    assert "is not writable" in body["checks"]["blob_store"]["detail"]


async def test_blob_store_result_is_cached(settings):
    app = build(settings)
    app.state.readiness.blob_store_cache_seconds = 60.0
    async with AsyncTestClient(app) as client:
        first, _ = await ready(client)
        shutil.rmtree(settings.effective_blob_dir)
        cached, _ = await ready(client)
        app.state.readiness.blob_store_cache_seconds = 0.0
        fresh, _ = await ready(client)

    assert first == 200
    assert cached == 200
    assert fresh == 503


@pytest.fixture
def own_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS of this test alone, because the test stops it; the session's server keeps running."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs-ready"))
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


async def test_ready_follows_s3_stop_and_start(settings, own_seaweed):
    s3_settings = {
        "blob_backend": "s3",
        "blob_s3_bucket": own_seaweed.bucket,
        "blob_s3_endpoint_url": own_seaweed.endpoint_url,
        "blob_s3_access_key_id": own_seaweed.access_key_id,
        "blob_s3_secret_access_key": own_seaweed.secret_access_key,
    }
    async with AsyncTestClient(build(settings, **s3_settings)) as client:
        up_status, _ = await ready(client)

        await asyncio.to_thread(own_seaweed.stop)
        started = time.monotonic()
        down_status, down_body = await ready(client)
        down_seconds = time.monotonic() - started

        await asyncio.to_thread(own_seaweed.start)
        back_status, back_body = await ready(client)

    assert up_status == 200
    assert down_status == 503
    assert down_body["checks"]["blob_store"]["ok"] is False
    assert own_seaweed.endpoint_url in down_body["checks"]["blob_store"]["detail"]
    assert down_seconds < 10
    assert back_status == 200, back_body
