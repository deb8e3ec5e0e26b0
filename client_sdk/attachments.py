"""The attachment queue: photos, documents and signatures as sha256-addressed blobs, uploaded resumably.

Blobs have their own queue, separate from the event outbox. An event that
references a blob (`attachment_added`, `signature_captured`) is held in the
outbox until its blob is uploaded, and so are the later events of the same
work order, which keeps the order's events in sequence. Events of other
orders are sent as usual, so a large or failing blob delays only its own order.

Each blob is copied into a folder next to the SQLite file when it is added,
so the app may delete its own file at once. The copy is deleted once the
server has stored the blob.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from shared_schema import AttachmentKind, BlobUploadStatus
from shared_schema.blobs import MediaType

from .errors import InvalidEvent, RequestRejected, SyncError
from .store import PENDING, LocalStore, OutboxEntry

if TYPE_CHECKING:
    from .client import SyncClient
    from .transport import Transport

log = logging.getLogger("client_sdk")

_decode_status = msgspec.json.Decoder(BlobUploadStatus).decode

# Event types whose payload field `sha256` names a blob.
ATTACHMENT_EVENT_TYPES = ("attachment_added", "signature_captured")
CHUNK_CONTENT_TYPE = "application/offset+octet-stream"
_COPY_BYTES = 1024 * 1024
# Offset corrections in a row before an upload round gives up on a blob.
_MAX_OFFSET_CONFLICTS = 3


class BlobState:
    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    FAILED = "FAILED"
    """The server rejected the blob for good, for example as too large. `retry()` queues it again."""


@dataclasses.dataclass(frozen=True)
class QueuedBlob:
    sha256: str
    kind: str
    content_type: str
    size_bytes: int
    state: str
    uploaded_bytes: int
    attempts: int
    last_error: str | None
    next_attempt_at: float


@dataclasses.dataclass(frozen=True)
class UploadReport:
    """Counts of one `upload_due()` round."""

    uploaded: int
    failed: int
    retrying: int


_COLUMNS = "sha256, kind, content_type, size_bytes, state, uploaded_bytes, attempts, last_error, next_attempt_at"


class AttachmentQueue:
    """Blobs waiting for upload, stored in the device's SQLite file and a folder beside it."""

    def __init__(
        self,
        store: LocalStore,
        transport: Transport,
        *,
        folder: Path | None = None,
        chunk_bytes: int = 1024 * 1024,
        initial_backoff: float = 2.0,
        max_backoff: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be 1 or more, got {chunk_bytes}")
        self.store = store
        self.transport = transport
        self.folder = folder or store.path.with_name(store.path.name + ".blobs")
        self.chunk_bytes = chunk_bytes
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        # The queue's table comes with the file's layout (migration 3 in client_sdk/migrations.py).
        self.folder.mkdir(parents=True, exist_ok=True)

    # -- adding ----------------------------------------------------------------

    def add(self, content: bytes | str | Path, *, kind: AttachmentKind | str, content_type: str) -> QueuedBlob:
        """Copy the content into the queue and return its entry. Adding the same content twice queues it once.

        `content` is the bytes themselves or the path of a file. Raises
        ValueError for an unknown kind, InvalidEvent (a ValueError) for a
        `content_type` that `POST /v1/blobs` would reject, and OSError when the
        file cannot be read. Nothing is queued when it raises.
        """
        kind_value = AttachmentKind(kind).value
        _check_media_type(content_type)
        temporary = self.folder / f".{uuid.uuid4().hex}.tmp"
        try:
            sha256, size = _copy_hashing(content, temporary)
            target = self._path(sha256)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO attachment_uploads (sha256, kind, content_type, size_bytes, state, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
                [sha256, kind_value, content_type, size, BlobState.PENDING, _now_iso()],
            )
        blob = self.get(sha256)
        assert blob is not None
        if blob.state == BlobState.UPLOADED:
            # The server has this content already, so the new copy is not needed.
            target.unlink(missing_ok=True)
        log.info("attachment queued: sha256=%s size_bytes=%d kind=%s state=%s", sha256, size, kind_value, blob.state)
        return blob

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256

    # -- status ----------------------------------------------------------------

    def get(self, sha256: str) -> QueuedBlob | None:
        with self.store.transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM attachment_uploads WHERE sha256 = ?", [sha256]).fetchone()
        return QueuedBlob(*row) if row else None

    def blobs(self) -> list[QueuedBlob]:
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM attachment_uploads ORDER BY added_at, sha256").fetchall()
        return [QueuedBlob(*row) for row in rows]

    def waiting_hashes(self) -> set[str]:
        """Return the hashes of blobs not uploaded yet, failed ones included."""
        with self.store.transaction() as db:
            rows = db.execute("SELECT sha256 FROM attachment_uploads WHERE state != ?", [BlobState.UPLOADED]).fetchall()
        return {row[0] for row in rows}

    def retry(self, sha256: str) -> None:
        """Queue a failed blob again for the next upload round."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE attachment_uploads SET state = ?, next_attempt_at = 0 WHERE sha256 = ? AND state = ?",
                [BlobState.PENDING, sha256, BlobState.FAILED],
            )

    def discard(self, sha256: str) -> None:
        """Remove a blob that is not uploaded from the queue, with its local copy, to release its order's events.

        The events that referenced it are then sent as they are. The server
        accepts them, but the blob cannot be downloaded unless another device
        uploads the same content. Discarding an uploaded or unknown blob does nothing.
        """
        with self.store.transaction() as db:
            cursor = db.execute(
                "DELETE FROM attachment_uploads WHERE sha256 = ? AND state != ?", [sha256, BlobState.UPLOADED]
            )
        if cursor.rowcount:
            self._path(sha256).unlink(missing_ok=True)
            log.warning("attachment discarded before upload: sha256=%s", sha256)

    # -- holding events ------------------------------------------------------------

    def sendable(self, limit: int) -> list[OutboxEntry]:
        """Return up to `limit` pending events in recording order, leaving out held ones.

        An event is held when it references a blob that is not uploaded, and
        every later event of its order is held behind it.
        """
        # The store's lock keeps this process's record() out between the two reads,
        # so an attachment event recorded meanwhile cannot slip through unheld.
        with self.store.transaction():
            held_orders = self._held_orders()
            if not held_orders:
                return self.store.pending(limit=limit)
            # Reading the held events too guarantees `limit` free ones when that many exist.
            held_count = sum(count for _, count in held_orders.values())
            entries = self.store.pending(limit=limit + held_count)
        return [entry for entry in entries if not _is_held(entry, held_orders)][:limit]

    def held_events(self) -> list[OutboxEntry]:
        """Return the pending events that wait for a blob upload, in recording order."""
        with self.store.transaction():
            held_orders = self._held_orders()
            entries = self.store.pending() if held_orders else []
        return [entry for entry in entries if _is_held(entry, held_orders)]

    def _held_orders(self) -> dict[str, tuple[int, int]]:
        """Map each order with a held event to the outbox sequence of its first held event and its held count."""
        with self.store.transaction() as db:
            rows = db.execute(
                "WITH first_held AS ("
                " SELECT work_order_id, min(sequence) AS sequence FROM outbox"
                " WHERE status = ? AND json_extract(event, '$.type') IN (?, ?)"
                " AND json_extract(event, '$.payload.sha256') IN"
                " (SELECT sha256 FROM attachment_uploads WHERE state != ?)"
                " GROUP BY work_order_id)"
                " SELECT f.work_order_id, f.sequence,"
                " (SELECT count(*) FROM outbox o WHERE o.status = ? AND o.work_order_id = f.work_order_id"
                " AND o.sequence >= f.sequence)"
                " FROM first_held f",
                [PENDING, *ATTACHMENT_EVENT_TYPES, BlobState.UPLOADED, PENDING],
            ).fetchall()
        return {order: (sequence, count) for order, sequence, count in rows}

    # -- uploading ----------------------------------------------------------------

    def upload_due(self, correlation_id: str | None = None) -> UploadReport:
        """Upload every pending blob whose retry time has come, one after another.

        A blob that fails is given a later retry time (exponential backoff with
        jitter) or, when the server rejected it for good, the FAILED state. A
        failure never stops the round. The method returns the counts.
        """
        correlation_id = correlation_id or f"upload-{uuid.uuid4()}"
        with self.store.transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM attachment_uploads WHERE state = ? AND next_attempt_at <= ?"
                " ORDER BY added_at, sha256",
                [BlobState.PENDING, self.clock()],
            ).fetchall()
        uploaded = failed = retrying = 0
        for blob in (QueuedBlob(*row) for row in rows):
            try:
                self._upload(blob, correlation_id)
            except RequestRejected as exc:
                if _worth_retrying(exc):
                    self._schedule_retry(blob, exc, correlation_id)
                    retrying += 1
                else:
                    self._mark_failed(blob, exc, correlation_id)
                    failed += 1
            except FileNotFoundError as exc:
                self._mark_failed(blob, exc, correlation_id)
                failed += 1
            except (SyncError, OSError) as exc:
                self._schedule_retry(blob, exc, correlation_id)
                retrying += 1
            else:
                uploaded += 1
        return UploadReport(uploaded=uploaded, failed=failed, retrying=retrying)

    def _upload(self, blob: QueuedBlob, correlation_id: str) -> None:
        body = msgspec.json.encode(
            {"sha256": blob.sha256, "size_bytes": blob.size_bytes, "content_type": blob.content_type}
        )
        response = self.transport.send("POST", "/v1/blobs", correlation_id, content=body)
        status = _decode_status(response.content)
        conflicts = 0
        with open(self._path(blob.sha256), "rb") as handle:
            while not status.complete:
                self._record_progress(blob.sha256, status.offset)
                handle.seek(status.offset)
                chunk = handle.read(self.chunk_bytes)
                headers = {"Content-Type": CHUNK_CONTENT_TYPE, "Upload-Offset": str(status.offset)}
                path = f"/v1/blobs/{blob.sha256}/upload"
                try:
                    response = self.transport.send("PATCH", path, correlation_id, content=chunk, headers=headers)
                except RequestRejected as exc:
                    # A chunk whose response was lost, or another device sending the
                    # same content: continue from the offset the server has.
                    offset = exc.body.get("offset") if isinstance(exc.body, dict) else None
                    if exc.status_code != 409 or not isinstance(offset, int) or conflicts >= _MAX_OFFSET_CONFLICTS:
                        raise
                    conflicts += 1
                    status = msgspec.structs.replace(status, offset=offset)
                    continue
                status = _decode_status(response.content)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE attachment_uploads SET state = ?, uploaded_bytes = size_bytes, last_error = NULL,"
                " uploaded_at = ? WHERE sha256 = ?",
                [BlobState.UPLOADED, _now_iso(), blob.sha256],
            )
        # The server has the blob now, so the local copy only took space on the device.
        self._path(blob.sha256).unlink(missing_ok=True)
        log.info("attachment uploaded: sha256=%s size_bytes=%d (correlation_id=%s)", blob.sha256, blob.size_bytes, correlation_id)

    def _record_progress(self, sha256: str, offset: int) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE attachment_uploads SET uploaded_bytes = ? WHERE sha256 = ?", [offset, sha256])

    def _schedule_retry(self, blob: QueuedBlob, error: Exception, correlation_id: str) -> None:
        attempts = blob.attempts + 1
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE attachment_uploads SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE sha256 = ?",
                [attempts, _describe(error), self.clock() + delay, blob.sha256],
            )
        log.warning(
            "attachment upload failed, retrying in %.1f s: sha256=%s attempt=%d error=%s (correlation_id=%s)",
            delay, blob.sha256, attempts, _describe(error), correlation_id,
        )

    def _mark_failed(self, blob: QueuedBlob, error: Exception, correlation_id: str) -> None:
        with self.store.transaction() as db:
            db.execute(
                "UPDATE attachment_uploads SET state = ?, attempts = attempts + 1, last_error = ? WHERE sha256 = ?",
                [BlobState.FAILED, _describe(error), blob.sha256],
            )
        log.error(
            "attachment upload rejected, not retried: sha256=%s error=%s (correlation_id=%s)",
            blob.sha256, _describe(error), correlation_id,
        )


def _worth_retrying(exc: RequestRejected) -> bool:
    """Return whether a 4xx may pass on a later attempt: an offset race, or a hash check after a corrupted transfer."""
    reason = exc.body.get("reason") if isinstance(exc.body, dict) else None
    return (exc.status_code == 409 and reason == "offset_mismatch") or reason == "hash_mismatch"


def _is_held(entry: OutboxEntry, held_orders: dict[str, tuple[int, int]]) -> bool:
    first_held = held_orders.get(entry.event.work_order_id)
    return first_held is not None and entry.sequence >= first_held[0]


def _check_media_type(content_type: str) -> None:
    """Raise InvalidEvent unless `content_type` passes the server's media type rule, such as `image/jpeg`."""
    try:
        msgspec.convert(content_type, MediaType)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(
            f"invalid content_type {content_type!r}: expected a media type such as image/jpeg,"
            f" type/subtype without parameters ({exc})",
            field="content_type",
        ) from exc


def _copy_hashing(content: bytes | str | Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as output:
        if isinstance(content, bytes):
            digest.update(content)
            output.write(content)
            size = len(content)
        else:
            with open(content, "rb") as source:
                while chunk := source.read(_COPY_BYTES):
                    digest.update(chunk)
                    output.write(chunk)
                    size += len(chunk)
        output.flush()
        os.fsync(output.fileno())
    return digest.hexdigest(), size


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# -- recording events with attachments ------------------------------------------------


def record_attachment(
    client: SyncClient,
    work_order_id: str,
    content: bytes | str | Path,
    *,
    kind: AttachmentKind | str = AttachmentKind.PHOTO,
    content_type: str,
    caption: str = "",
) -> OutboxEntry:
    """Queue the blob, then record an `attachment_added` event that references it.

    The blob is queued first, so a process killed in between leaves at most
    an unreferenced blob, never an event whose blob is unknown.
    """
    blob = client.attachments.add(content, kind=kind, content_type=content_type)
    payload = {
        "sha256": blob.sha256,
        "kind": blob.kind,
        "content_type": content_type,
        "size_bytes": blob.size_bytes,
        "caption": caption,
    }
    return client.record(work_order_id, "attachment_added", payload)


def record_signature(
    client: SyncClient, work_order_id: str, content: bytes | str | Path, *, signer_name: str, content_type: str = "image/png"
) -> OutboxEntry:
    """Queue the signature image, then record a `signature_captured` event that references it."""
    blob = client.attachments.add(content, kind=AttachmentKind.SIGNATURE, content_type=content_type)
    return client.record(work_order_id, "signature_captured", {"signer_name": signer_name, "sha256": blob.sha256})
