"""Resumable uploads: partial content staged on local disk, verified by sha256, then moved to the blob store.

The staged file of a hash is the upload's state: its length is the offset the
next chunk must start at, so an upload resumes after a broken connection or a
server restart. Uploads of one hash from several devices share that file.
Content addressed by its hash makes any sender's chunk at the current offset
the same bytes, and the final hash check catches a chunk that is not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from pathlib import Path

import structlog

from ..store.blob_index import BlobIndex, BlobRecord
from .store import BlobStore, check_sha256

log = structlog.get_logger("csdp.blobs")

_HASH_READ_BYTES = 1024 * 1024


class OffsetMismatch(Exception):
    """A chunk does not start where the staged content ends."""

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"the chunk starts at offset {received} but the server has {expected} bytes")
        self.expected = expected
        self.received = received


class ChunkBeyondSize(Exception):
    """A chunk would make the content longer than the declared size."""

    def __init__(self, end: int, size_bytes: int) -> None:
        super().__init__(f"the chunk would end at byte {end}, after the declared size of {size_bytes} bytes")
        self.end = end
        self.size_bytes = size_bytes


class HashMismatch(Exception):
    """The received content hashes to another value than the declared one; the staged bytes are discarded."""

    def __init__(self, declared: str, received: str) -> None:
        super().__init__(f"the received content has sha256 {received}, not the declared {declared}")
        self.declared = declared
        self.received = received


class BlobUploads:
    """Accepts chunks for declared blobs and stores each blob once its hash is verified."""

    def __init__(self, staging_dir: Path, blob_store: BlobStore, index: BlobIndex) -> None:
        self.staging_dir = staging_dir
        self.blob_store = blob_store
        self.index = index
        # One writer per hash inside this process. NOTE: several server processes
        # need a shared staging folder with file locks, which is not built yet.
        self._locks: dict[str, asyncio.Lock] = {}

    async def open(self) -> None:
        await asyncio.to_thread(self.staging_dir.mkdir, parents=True, exist_ok=True)

    def _staged_path(self, sha256: str) -> Path:
        return self.staging_dir / f"{check_sha256(sha256)}.part"

    async def offset(self, record: BlobRecord) -> int:
        """Return how many bytes of the blob the server has."""
        if record.stored:
            return record.size_bytes
        try:
            return (await asyncio.to_thread(self._staged_path(record.sha256).stat)).st_size
        except FileNotFoundError:
            return 0

    async def append(
        self, record: BlobRecord, offset: int, data: bytes, *, subject: str, correlation_id: str | None
    ) -> int:
        """Write `data` at `offset` and return the new offset; store the blob when it is complete.

        Raises OffsetMismatch, ChunkBeyondSize or HashMismatch for a client's
        mistake, and BlobStoreError or OSError when the server cannot write.
        """
        lock = self._locks.setdefault(record.sha256, asyncio.Lock())
        async with lock:
            # Another request may have finished the blob while this one waited.
            record = await self.index.get(record.sha256) or record
            current = await self.offset(record)
            if record.stored:
                return current
            if offset != current:
                raise OffsetMismatch(current, offset)
            end = offset + len(data)
            if end > record.size_bytes:
                raise ChunkBeyondSize(end, record.size_bytes)
            path = self._staged_path(record.sha256)
            if data or not path.exists():
                await asyncio.to_thread(_append_durably, path, data)
            if end < record.size_bytes:
                return end
            await self._finish(record, path, subject=subject, correlation_id=correlation_id)
            return end

    async def _finish(self, record: BlobRecord, path: Path, *, subject: str, correlation_id: str | None) -> None:
        received = await asyncio.to_thread(_sha256_of, path)
        if received != record.sha256:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            log.warning(
                "blob_hash_mismatch",
                sha256=record.sha256,
                received_sha256=received,
                subject=subject,
                correlation_id=correlation_id,
            )
            raise HashMismatch(record.sha256, received)
        await self.blob_store.put_file(record.sha256, path, record.content_type)
        await self.index.mark_stored(record.sha256, subject, dt.datetime.now(dt.timezone.utc))
        await asyncio.to_thread(path.unlink, missing_ok=True)
        self._locks.pop(record.sha256, None)
        log.info(
            "blob_stored",
            sha256=record.sha256,
            size_bytes=record.size_bytes,
            store=self.blob_store.description,
            subject=subject,
            correlation_id=correlation_id,
        )


def _append_durably(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
