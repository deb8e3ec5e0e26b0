"""Blob stores: where the bytes of finished attachment uploads live, keyed by their sha256.

Both stores offer the same small interface and pass the same contract tests
(tests/test_blob_store.py): `LocalBlobStore` writes files under a folder,
`S3BlobStore` (server/blobs/s3.py) writes objects to a bucket.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Settings

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
READ_CHUNK_BYTES = 256 * 1024


class BlobStoreError(Exception):
    """The blob store failed or cannot be reached; the message names the store."""


class BlobStore(Protocol):
    description: str

    async def open(self) -> None:
        """Check that the store can be used, raising BlobStoreError with the reason when not."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Check cheaply that the open store can still be written, raising BlobStoreError with the reason when not."""

    async def put_file(self, sha256: str, path: Path, content_type: str) -> None:
        """Store the finished file at `path` under `sha256`. The caller has verified its hash."""

    async def size(self, sha256: str) -> int | None:
        """Return the stored size in bytes, or None when no blob has this hash."""

    def read_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        """Yield the blob's bytes in order, or raise BlobStoreError when it is missing."""

    async def delete(self, sha256: str) -> None:
        """Remove the blob. Removing a missing blob is not an error."""


def check_sha256(sha256: str) -> str:
    if not SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 digest of 64 lowercase hex digits")
    return sha256


class LocalBlobStore:
    """Blobs as files `<root>/<first two hex digits>/<sha256>`, written by an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"local folder {root}"

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobStoreError(f"the blob folder {self.root} cannot be created: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise BlobStoreError(f"the blob folder {self.root} is not writable")

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        def probe() -> str | None:
            if not self.root.is_dir():
                return f"the blob folder {self.root} does not exist"
            if not os.access(self.root, os.W_OK | os.X_OK):
                return f"the blob folder {self.root} is not writable"
            return None

        problem = await asyncio.to_thread(probe)
        if problem is not None:
            raise BlobStoreError(problem)

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    async def put_file(self, sha256: str, path: Path, content_type: str) -> None:
        target = self._path(sha256)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Copy next to the target first, so a reader never sees a partial
            # file even when the staging folder is on another file system.
            temporary = target.with_name(f".{sha256}.{uuid.uuid4().hex}.tmp")
            try:
                shutil.copyfile(path, temporary)
                with open(temporary, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise BlobStoreError(f"writing blob {sha256} to {self.root} failed: {exc}") from exc

    async def size(self, sha256: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    async def read_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        path = self._path(sha256)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobStoreError(f"blob {sha256} is missing from {self.root}") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def delete(self, sha256: str) -> None:
        await asyncio.to_thread(self._path(sha256).unlink, missing_ok=True)


def create_blob_store(settings: Settings) -> BlobStore:
    """Build the blob store that `settings.blob_backend` selects; it still has to be opened."""
    if settings.blob_backend == "s3":
        from .s3 import S3BlobStore

        return S3BlobStore(
            bucket=settings.blob_s3_bucket,
            prefix=settings.blob_s3_prefix,
            endpoint_url=settings.blob_s3_endpoint_url or None,
            region=settings.blob_s3_region,
            access_key_id=settings.blob_s3_access_key_id or None,
            secret_access_key=settings.blob_s3_secret_access_key or None,
        )
    return LocalBlobStore(settings.effective_blob_dir)
