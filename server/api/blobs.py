"""Attachment blobs: declare an upload, probe its offset, send chunks, download.

The protocol is described in docs/attachments.md. Every route is open to all
roles; the download applies a per-blob scope for engineers.
"""

from __future__ import annotations

import datetime as dt

import msgspec
import structlog
from litestar import Request, Response, get, head, patch, post
from litestar.params import FromPath
from litestar.response import Stream

from shared_schema import Actor, BlobUploadRequest, BlobUploadStatus, Role

from ..blobs import BlobStoreError, BlobUploads, ChunkBeyondSize, HashMismatch, OffsetMismatch
from ..blobs.store import SHA256_HEX
from ..store.blob_index import BlobIndex, BlobRecord
from .context import CurrentActor, check_query_names, settings_of
from .errors import (
    ApiError,
    Forbidden,
    InvalidField,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    validation_error,
)
from .events import decode_document

log = structlog.get_logger("csdp.blobs")
_decode_upload_request = msgspec.json.Decoder(BlobUploadRequest).decode

OFFSET_HEADER = "upload-offset"
CHUNK_CONTENT_TYPES = ("application/offset+octet-stream", "application/octet-stream")


class Conflict(ApiError):
    status_code = 409
    error = "conflict"


class UnsupportedMediaType(ApiError):
    status_code = 415
    error = "unsupported_media_type"


def uploads_of(request: Request) -> BlobUploads:
    return request.app.state.blob_uploads


def index_of(request: Request) -> BlobIndex:
    return request.app.state.blob_index


def _correlation(request: Request) -> str | None:
    return request.scope.get("state", {}).get("correlation_id")


def checked_sha256(sha256: str) -> str:
    if not SHA256_HEX.fullmatch(sha256):
        hint = "; use lowercase hex digits" if SHA256_HEX.fullmatch(sha256.lower()) else ""
        raise InvalidField(
            f"{sha256[:100]!r} is not a sha256 digest of 64 lowercase hex digits{hint}", field="sha256", value=sha256[:100]
        )
    return sha256


async def _known_blob(request: Request, sha256: str) -> BlobRecord:
    record = await index_of(request).get(checked_sha256(sha256))
    if record is None:
        raise NotFound(
            f"no upload of blob {sha256} was declared; declare it with POST /v1/blobs first",
            field="sha256",
            value=sha256,
            reason="blob_not_found",
        )
    return record


async def _status(request: Request, record: BlobRecord) -> BlobUploadStatus:
    offset = await uploads_of(request).offset(record)
    return BlobUploadStatus(
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        content_type=record.content_type,
        offset=offset,
        complete=record.stored,
    )


def parse_upload_request(body: bytes, max_bytes: int) -> BlobUploadRequest:
    if not body:
        raise MalformedRequest('the request body is empty; send {"sha256": ..., "size_bytes": ..., "content_type": ...}')
    try:
        upload = _decode_upload_request(body)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, decode_document(body)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedRequest(f"the request body is not valid JSON: {exc}") from exc
    if upload.size_bytes > max_bytes:
        raise PayloadTooLarge(
            f"the blob has {upload.size_bytes} bytes, more than the limit of {max_bytes}; "
            "reduce the photo's resolution or split the document",
            field="$.size_bytes",
            value=upload.size_bytes,
            limit=max_bytes,
        )
    return upload


@post("/v1/blobs", status_code=200, name="blobs.create")
async def create_blob_upload(request: Request, actor: CurrentActor) -> BlobUploadStatus:
    """Declare a blob by hash, size and media type, or find the upload already declared, and return its offset."""
    check_query_names(request, set())
    upload = parse_upload_request(await request.body(), settings_of(request).blob_max_bytes)
    declared = BlobRecord(
        sha256=upload.sha256,
        size_bytes=upload.size_bytes,
        content_type=upload.content_type.lower(),
        status="uploading",
        created_by=actor.subject,
    )
    record = await index_of(request).create(declared, dt.datetime.now(dt.timezone.utc))
    if record.size_bytes != upload.size_bytes:
        raise Conflict(
            f"blob {upload.sha256} was declared with {record.size_bytes} bytes, not {upload.size_bytes}; "
            "content with one hash has one size, so check the hash and the size",
            field="$.size_bytes",
            value=upload.size_bytes,
            reason="size_conflict",
        )
    if record.content_type != declared.content_type:
        raise Conflict(
            f"blob {upload.sha256} was declared with the media type {record.content_type!r}, "
            f"not {declared.content_type!r}; one content has one media type, so declare it as {record.content_type!r}",
            field="$.content_type",
            value=upload.content_type,
            reason="content_type_conflict",
        )
    status = await _status(request, record)
    log.info(
        "blob_upload_declared",
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        offset=status.offset,
        complete=status.complete,
        subject=actor.subject,
        correlation_id=_correlation(request),
    )
    return status


@get("/v1/blobs/{sha256:str}/upload", name="blobs.upload_status")
async def get_blob_upload(request: Request, sha256: FromPath[str]) -> BlobUploadStatus:
    """Return how many bytes of the blob the server has, so an interrupted upload resumes there."""
    check_query_names(request, set())
    return await _status(request, await _known_blob(request, sha256))


def _offset_header(request: Request) -> int:
    raw = request.headers.get(OFFSET_HEADER)
    if raw is None:
        raise InvalidField(
            "the Upload-Offset header is missing; send the offset this chunk starts at, from GET .../upload",
            field="Upload-Offset",
        )
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidField(
            "the Upload-Offset header must be a whole number of bytes, 0 or more", field="Upload-Offset", value=raw[:100]
        )
    return int(raw)


def _check_chunk_content_type(request: Request) -> None:
    raw = request.headers.get("content-type", "")
    media_type = raw.split(";", 1)[0].strip().lower()
    if media_type not in CHUNK_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"a chunk must be sent as {' or '.join(CHUNK_CONTENT_TYPES)}, not {raw[:100]!r}",
            field="Content-Type",
            value=raw[:100],
        )


@patch("/v1/blobs/{sha256:str}/upload", name="blobs.upload_chunk")
async def patch_blob_upload(request: Request, actor: CurrentActor, sha256: FromPath[str]) -> BlobUploadStatus:
    """Append one chunk at the Upload-Offset header. The last chunk triggers the hash check and storage."""
    check_query_names(request, set())
    _check_chunk_content_type(request)
    offset = _offset_header(request)
    record = await _known_blob(request, sha256)
    data = await request.body()
    if not data and offset < record.size_bytes:
        raise InvalidField("the chunk is empty; send at least one byte", field="body", value=0)
    try:
        await uploads_of(request).append(record, offset, data, subject=actor.subject, correlation_id=_correlation(request))
    except OffsetMismatch as exc:
        raise Conflict(
            f"{exc}; resume at offset {exc.expected}",
            field="Upload-Offset",
            value=exc.received,
            offset=exc.expected,
            reason="offset_mismatch",
        ) from None
    except ChunkBeyondSize as exc:
        raise PayloadTooLarge(
            f"{exc}; send only the remaining {record.size_bytes - offset} bytes",
            field="body",
            value=len(data),
            limit=record.size_bytes,
        ) from None
    except HashMismatch as exc:
        raise InvalidField(
            f"{exc}; the received bytes were discarded, so upload the content again from offset 0",
            field="sha256",
            value=exc.received,
            reason="hash_mismatch",
        ) from None
    except (BlobStoreError, OSError) as exc:
        raise ServiceUnavailable(
            "the blob could not be written; retry the chunk", retry_after=5, detail=f"{sha256}: {exc}"
        ) from None
    return await _status(request, await _known_blob(request, sha256))


async def _check_download_scope(request: Request, actor: Actor, sha256: str) -> None:
    """Raise 403 unless an engineer uploaded the blob or one of their orders references it. Office roles pass."""
    if actor.role is not Role.ENGINEER:
        return
    if await index_of(request).engineer_may_read(sha256, actor.subject, actor.engineer_id):
        return
    # The same 403 for a missing blob, so engineers cannot probe which hashes exist.
    raise Forbidden(
        f"blob {sha256} was not uploaded by {actor.subject} and no work order assigned to engineer "
        f"{actor.engineer_id} references it",
        field="sha256",
        value=sha256,
        reason="blob_not_permitted",
    )


async def _download_headers(request: Request, actor: Actor, sha256: str) -> dict[str, str]:
    """Check the scope and that the blob is stored, and return the headers of its download."""
    check_query_names(request, set())
    checked_sha256(sha256)
    await _check_download_scope(request, actor, sha256)

    record = await index_of(request).get(sha256)
    if record is None:
        raise NotFound(f"blob {sha256} was not found", field="sha256", value=sha256, reason="blob_not_found")
    if not record.stored:
        raise NotFound(
            f"blob {sha256} is declared but its upload is not complete; retry later",
            field="sha256",
            value=sha256,
            reason="blob_not_uploaded",
        )

    blob_store = uploads_of(request).blob_store
    try:
        size = await blob_store.size(sha256)
    except BlobStoreError as exc:
        raise ServiceUnavailable("the blob store cannot be read; retry the request", retry_after=5, detail=str(exc)) from None
    if size is None:
        log.error("blob_missing_from_store", sha256=sha256, store=blob_store.description, correlation_id=_correlation(request))
        raise ServiceUnavailable("the blob is recorded but missing from the blob store; it was logged", retry_after=60)

    return {
        # Set here, not through media_type, because Litestar appends "; charset=utf-8" to a text/* media type.
        "Content-Type": record.content_type,
        "Content-Length": str(size),
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, max-age=31536000, immutable",
        # The media type is the uploader's claim: never let a browser render the blob as a page.
        "Content-Disposition": f'attachment; filename="{sha256}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }


def _matches_etag(request: Request, sha256: str) -> bool:
    """Return True when If-None-Match lists the blob's ETag (weak or strong) or is `*`."""
    raw = request.headers.get("if-none-match")
    if raw is None:
        return False
    for tag in raw.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag in ("*", f'"{sha256}"'):
            return True
    return False


def _not_modified(headers: dict[str, str]) -> Response[None]:
    # A 304 carries the validators and caching headers of the 200 it stands for, but no body or length.
    kept = {name: value for name, value in headers.items() if name in ("ETag", "Cache-Control")}
    return Response(content=None, status_code=304, headers=kept)


@get("/v1/blobs/{sha256:str}", name="blobs.get")
async def get_blob(request: Request, actor: CurrentActor, sha256: FromPath[str]) -> Stream | Response[None]:
    """Stream a stored blob with its declared media type. Engineers get only their own and their orders' blobs.

    A request whose If-None-Match lists the blob's ETag gets 304 without a body. Range requests are not
    supported: the whole blob is sent.
    """
    headers = await _download_headers(request, actor, sha256)
    if _matches_etag(request, sha256):
        return _not_modified(headers)
    blob_store = uploads_of(request).blob_store
    return Stream(blob_store.read_chunks(sha256), media_type=headers["Content-Type"], headers=headers)


@head("/v1/blobs/{sha256:str}", name="blobs.head")
async def head_blob(request: Request, actor: CurrentActor, sha256: FromPath[str]) -> Response[None]:
    """Return the download's headers without the body, with the same scope and If-None-Match rules as GET."""
    headers = await _download_headers(request, actor, sha256)
    if _matches_etag(request, sha256):
        return _not_modified(headers)
    # Empty bytes, not None: Litestar cannot render None for a media type other than JSON.
    return Response(content=b"", status_code=200, headers=headers, media_type=headers["Content-Type"])


ROUTES = [create_blob_upload, get_blob_upload, patch_blob_upload, get_blob, head_blob]
