"""Request and response bodies of the resumable blob upload API."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .payloads import Sha256

# A media type such as image/jpeg or application/pdf, without parameters.
MediaType = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=127,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
    ),
]


class BlobUploadRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of `POST /v1/blobs`: the hash, size and media type of the content a device is about to send."""

    sha256: Sha256
    size_bytes: Annotated[int, msgspec.Meta(ge=0)]
    content_type: MediaType


class BlobUploadStatus(msgspec.Struct, kw_only=True):
    """State of one blob's upload: `offset` bytes received, and `complete` once stored and verified."""

    sha256: str
    size_bytes: int
    content_type: str
    offset: int
    complete: bool
