"""Attachment blobs: the blob stores and the resumable upload protocol."""

from .store import BlobStore, BlobStoreError, LocalBlobStore, create_blob_store
from .uploads import BlobUploads, ChunkBeyondSize, HashMismatch, OffsetMismatch

__all__ = [
    "BlobStore",
    "BlobStoreError",
    "BlobUploads",
    "ChunkBeyondSize",
    "HashMismatch",
    "LocalBlobStore",
    "OffsetMismatch",
    "create_blob_store",
]
