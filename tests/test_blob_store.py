"""Contract tests of the blob stores: the same checks against a local folder and a real SeaweedFS over S3."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from seaweedfs import seaweed_s3  # noqa: F401 - the session fixture, used by name

from server.blobs import BlobStoreError, LocalBlobStore
from server.blobs.s3 import S3BlobStore
from server.blobs.store import READ_CHUNK_BYTES, BlobStore


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    s3 = request.getfixturevalue("seaweed_s3")
    # A prefix per test keeps tests apart inside the session's bucket.
    yield S3BlobStore(
        bucket=s3.bucket,
        prefix=f"{tmp_path.name}/",
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )


def staged(tmp_path: Path, content: bytes) -> tuple[str, Path]:
    path = tmp_path / "staged.part"
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest(), path


async def read_all(store: BlobStore, sha256: str) -> bytes:
    return b"".join([chunk async for chunk in store.read_chunks(sha256)])


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_put_then_read_round_trip(blob_store, tmp_path):
    content = os.urandom(3 * READ_CHUNK_BYTES + 17)
    sha256, path = staged(tmp_path, content)

    async def scenario() -> tuple[int | None, bytes]:
        await blob_store.open()
        try:
            await blob_store.put_file(sha256, path, "image/jpeg")
            return await blob_store.size(sha256), await read_all(blob_store, sha256)
        finally:
            await blob_store.close()

    size, read_back = run(scenario())

    assert size == len(content)
    assert read_back == content


def test_empty_blob_round_trip(blob_store, tmp_path):
    sha256, path = staged(tmp_path, b"")

    async def scenario() -> tuple[int | None, bytes]:
        await blob_store.open()
        try:
            await blob_store.put_file(sha256, path, "text/plain")
            return await blob_store.size(sha256), await read_all(blob_store, sha256)
        finally:
            await blob_store.close()

    size, read_back = run(scenario())

    assert size == 0
    assert read_back == b""


def test_missing_blob_has_no_size(blob_store):
    async def scenario() -> int | None:
        await blob_store.open()
        try:
            return await blob_store.size("0" * 64)
        finally:
            await blob_store.close()

    assert run(scenario()) is None


def test_reading_missing_blob_raises(blob_store):
    async def scenario() -> None:
        await blob_store.open()
        try:
            await read_all(blob_store, "1" * 64)
        finally:
            await blob_store.close()

    with pytest.raises(BlobStoreError, match="is missing"):
        run(scenario())


def test_put_twice_keeps_one_blob(blob_store, tmp_path):
    content = b"signature strokes"
    sha256, path = staged(tmp_path, content)

    async def scenario() -> bytes:
        await blob_store.open()
        try:
            await blob_store.put_file(sha256, path, "image/png")
            await blob_store.put_file(sha256, path, "image/png")
            return await read_all(blob_store, sha256)
        finally:
            await blob_store.close()

    assert run(scenario()) == content


def test_delete_removes_blob(blob_store, tmp_path):
    sha256, path = staged(tmp_path, b"to be removed")

    async def scenario() -> tuple[int | None, int | None]:
        await blob_store.open()
        try:
            await blob_store.put_file(sha256, path, "text/plain")
            before = await blob_store.size(sha256)
            await blob_store.delete(sha256)
            await blob_store.delete(sha256)
            return before, await blob_store.size(sha256)
        finally:
            await blob_store.close()

    before, after = run(scenario())

    assert before == len(b"to be removed")
    assert after is None


@pytest.mark.parametrize("bad", ["", "ab", "../" + "a" * 61, "A" * 64, "g" * 64])
def test_invalid_hash_rejected(blob_store, bad):
    async def scenario() -> None:
        await blob_store.open()
        try:
            await blob_store.size(bad)
        finally:
            await blob_store.close()

    with pytest.raises(ValueError, match="not a sha256 digest"):
        run(scenario())


def test_local_store_unwritable_folder_fails_open(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = LocalBlobStore(blocker / "blobs")

    with pytest.raises(BlobStoreError, match="cannot be created"):
        run(store.open())


def test_s3_store_missing_bucket_fails_open(seaweed_s3):
    store = S3BlobStore(
        bucket="no-such-bucket",
        endpoint_url=seaweed_s3.endpoint_url,
        access_key_id=seaweed_s3.access_key_id,
        secret_access_key=seaweed_s3.secret_access_key,
    )

    with pytest.raises(BlobStoreError, match="'no-such-bucket'.*cannot be used"):
        run(store.open())


def test_s3_store_wrong_secret_fails_open(seaweed_s3):
    store = S3BlobStore(
        bucket=seaweed_s3.bucket,
        endpoint_url=seaweed_s3.endpoint_url,
        access_key_id=seaweed_s3.access_key_id,
        secret_access_key="wrong-secret",
    )

    with pytest.raises(BlobStoreError, match="cannot be used"):
        run(store.open())


def test_s3_store_unreachable_endpoint_fails_open():
    from conftest import free_port

    store = S3BlobStore(
        bucket="csdp-blobs",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="key",
        secret_access_key="secret",
    )

    with pytest.raises(BlobStoreError, match="cannot be reached"):
        run(store.open())
