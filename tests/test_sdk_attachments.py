"""The SDK's attachment queue against a real server: resumable uploads, held events, failures that stay local."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
import respx
from api_helpers import assigned, created, post_batch
from conftest import LiveServer, start_server, stop_server
from sdk_helpers import ENGINEER, ORDER, FaultTransport, Tablets, server_events

from client_sdk import InvalidEvent
from client_sdk.attachments import BlobState, record_attachment, record_signature
from server.config import Settings

OTHER_ORDER = "wo-2001"
SERVER_MAX_BLOB_BYTES = 50_000


@pytest.fixture
def store_kind() -> str:
    """Run on SQLite only: the queue does not depend on the server's store, and the API tests cover both."""
    return "sqlite"


@pytest.fixture
def blob_demo_server(settings: Settings) -> Iterator[LiveServer]:
    limited = dataclasses.replace(settings, blob_max_bytes=SERVER_MAX_BLOB_BYTES)
    server, thread, base_url = start_server(limited, demo=True)
    live = LiveServer(base_url=base_url, settings=limited)
    # A second order for the same engineer, so one order's blob can be held while the other's events go.
    with live.client("dispatcher", "d-1") as http:
        decisions = post_batch(http, [created(OTHER_ORDER), assigned(OTHER_ORDER, ENGINEER)])
    assert [decision["status"] for decision in decisions] == ["ACCEPTED", "ACCEPTED"]
    try:
        yield live
    finally:
        stop_server(server, thread)


@pytest.fixture
def tablets(blob_demo_server, tmp_path) -> Iterator[Tablets]:
    factory = Tablets(blob_demo_server, tmp_path / "devices")
    yield factory
    factory.close_all()


def event_types(server: LiveServer, work_order_id: str) -> list[str]:
    return [event.type for event in server_events(server, work_order_id)]


def download(server: LiveServer, sha256: str) -> httpx.Response:
    with server.client("dispatcher", "d-1") as http:
        return http.get(f"/v1/blobs/{sha256}")


class PatchFaults:
    """respx side effect for blob chunks: records each Upload-Offset and fails the chunks numbered in `failing`."""

    def __init__(self, failing: set[int] | None = None, fail_all: bool = False) -> None:
        self.failing = failing or set()
        self.fail_all = fail_all
        self.offsets: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Request:
        self.offsets.append(int(request.headers["upload-offset"]))
        if self.fail_all or len(self.offsets) in self.failing:
            raise httpx.ConnectError("injected: network lost during the chunk", request=request)
        return request


@contextlib.contextmanager
def chunk_faults(server: LiveServer, faults: PatchFaults) -> Iterator[None]:
    """Route blob chunk requests through `faults`; every other request goes to the real server unchanged."""
    with respx.mock(base_url=server.base_url, assert_all_called=False, using="httpx") as router:
        router.route(method="PATCH", path__regex=r"^/v1/blobs/[0-9a-f]{64}/upload$").mock(side_effect=faults)
        router.route().pass_through()
        yield


# -- a failing blob holds only its own order --------------------------------------------


def test_failing_blob_holds_only_its_order(blob_demo_server, tablets):
    tablet = tablets.open(max_attempts=2)
    tablet.attachments.initial_backoff = 0
    tablet.record(ORDER, "accepted")
    tablet.record(OTHER_ORDER, "accepted")
    photo = os.urandom(20_000)
    attachment = record_attachment(tablet, ORDER, photo, content_type="image/jpeg", caption="spindle housing")
    tablet.record(ORDER, "note_added", {"text": "photo taken before disassembly"})
    tablet.record(OTHER_ORDER, "travel_started")

    with chunk_faults(blob_demo_server, PatchFaults(fail_all=True)):
        report = tablet.sync()

    blob = tablet.attachments.get(attachment.event.payload["sha256"])
    assert event_types(blob_demo_server, OTHER_ORDER)[-2:] == ["accepted", "travel_started"]
    assert event_types(blob_demo_server, ORDER)[-1] == "accepted"
    assert report.accepted == 3
    assert [entry.event.type for entry in tablet.pending()] == ["attachment_added", "note_added"]
    assert [entry.event.type for entry in tablet.attachments.held_events()] == ["attachment_added", "note_added"]
    assert blob.state == BlobState.PENDING
    assert blob.attempts == 1
    assert "ServerUnreachable" in blob.last_error


def test_held_events_do_not_fill_batches(blob_demo_server, tablets):
    tablet = tablets.open(max_attempts=1, batch_size=2)
    tablet.record(ORDER, "accepted")
    record_attachment(tablet, ORDER, os.urandom(1_000), content_type="image/jpeg")
    for number in range(5):
        tablet.record(ORDER, "note_added", {"text": f"note {number} behind the photo"})
    tablet.record(OTHER_ORDER, "accepted")
    tablet.record(OTHER_ORDER, "travel_started")
    tablet.record(OTHER_ORDER, "arrived")

    with chunk_faults(blob_demo_server, PatchFaults(fail_all=True)):
        tablet.sync()

    assert event_types(blob_demo_server, OTHER_ORDER)[-3:] == ["accepted", "travel_started", "arrived"]
    assert tablet.pending_count() == 6
    assert len(tablet.attachments.held_events()) == 6


def test_failing_blob_sent_after_recovery(blob_demo_server, tablets):
    tablet = tablets.open(max_attempts=2)
    tablet.attachments.initial_backoff = 0
    tablet.record(ORDER, "accepted")
    photo = os.urandom(20_000)
    attachment = record_attachment(tablet, ORDER, photo, content_type="image/jpeg")
    tablet.record(ORDER, "note_added", {"text": "after the photo"})
    with chunk_faults(blob_demo_server, PatchFaults(fail_all=True)):
        tablet.sync()

    tablet.sync()

    sha256 = attachment.event.payload["sha256"]
    assert tablet.pending_count() == 0
    assert event_types(blob_demo_server, ORDER)[-3:] == ["accepted", "attachment_added", "note_added"]
    assert tablet.attachments.get(sha256).state == BlobState.UPLOADED
    assert download(blob_demo_server, sha256).content == photo


def test_oversize_blob_fails_without_blocking_others(blob_demo_server, tablets):
    tablet = tablets.open()
    tablet.record(ORDER, "accepted")
    tablet.record(OTHER_ORDER, "accepted")
    video = os.urandom(SERVER_MAX_BLOB_BYTES + 1)
    attachment = record_attachment(tablet, ORDER, video, kind="document", content_type="video/mp4")
    tablet.record(OTHER_ORDER, "travel_started")

    tablet.sync()

    blob = tablet.attachments.get(attachment.event.payload["sha256"])
    assert blob.state == BlobState.FAILED
    assert "413" in blob.last_error
    assert event_types(blob_demo_server, OTHER_ORDER)[-1] == "travel_started"
    assert [entry.event.type for entry in tablet.pending()] == ["attachment_added"]


def test_failed_blob_not_retried_until_asked(blob_demo_server, tablets):
    tablet = tablets.open()
    tablet.record(ORDER, "accepted")
    record_attachment(tablet, ORDER, os.urandom(SERVER_MAX_BLOB_BYTES + 1), content_type="video/mp4")
    tablet.sync()
    blob = tablet.attachments.blobs()[0]

    second = tablet.attachments.upload_due()
    tablet.attachments.retry(blob.sha256)
    after_retry = tablet.attachments.get(blob.sha256)

    assert second.failed == 0
    assert second.uploaded == 0
    assert after_retry.state == BlobState.PENDING


def test_discarded_blob_releases_its_order(blob_demo_server, tablets):
    tablet = tablets.open()
    tablet.record(ORDER, "accepted")
    attachment = record_attachment(tablet, ORDER, os.urandom(SERVER_MAX_BLOB_BYTES + 1), content_type="video/mp4")
    tablet.record(ORDER, "note_added", {"text": "video too large, described in words instead"})
    tablet.sync()
    sha256 = attachment.event.payload["sha256"]

    tablet.attachments.discard(sha256)
    tablet.sync()

    assert tablet.attachments.get(sha256) is None
    assert not (tablet.attachments.folder / sha256).exists()
    assert tablet.pending_count() == 0
    assert event_types(blob_demo_server, ORDER)[-2:] == ["attachment_added", "note_added"]
    assert download(blob_demo_server, sha256).status_code == 404


def test_discard_keeps_uploaded_blob(tablets):
    tablet = tablets.open()
    blob = tablet.attachments.add(b"already sent", kind="photo", content_type="image/jpeg")
    tablet.attachments.upload_due()

    tablet.attachments.discard(blob.sha256)

    assert tablet.attachments.get(blob.sha256).state == BlobState.UPLOADED


# -- resumable uploads ----------------------------------------------------------------


def test_broken_upload_resumes_from_offset(blob_demo_server, tablets):
    tablet = tablets.open(max_attempts=1)
    tablet.attachments.chunk_bytes = 10_000
    tablet.attachments.initial_backoff = 0
    content = os.urandom(35_000)
    blob = tablet.attachments.add(content, kind="document", content_type="application/pdf")
    first = PatchFaults(failing={3})
    second = PatchFaults()

    with chunk_faults(blob_demo_server, first):
        broken = tablet.attachments.upload_due()
    progress = tablet.attachments.get(blob.sha256).uploaded_bytes
    with chunk_faults(blob_demo_server, second):
        resumed = tablet.attachments.upload_due()

    assert broken.retrying == 1
    assert first.offsets == [0, 10_000, 20_000]
    assert progress == 20_000
    assert resumed.uploaded == 1
    assert second.offsets == [20_000, 30_000]
    assert download(blob_demo_server, blob.sha256).content == content


def test_lost_chunk_response_continues_at_server_offset(blob_demo_server, tablets):
    transport = FaultTransport()
    tablet = tablets.open(transport=transport, max_attempts=3)
    tablet.attachments.chunk_bytes = 10_000
    content = os.urandom(25_000)
    blob = tablet.attachments.add(content, kind="photo", content_type="image/jpeg")
    path = f"/v1/blobs/{blob.sha256}/upload"
    transport.lose_response("PATCH", path)

    report = tablet.attachments.upload_due()

    chunks = transport.requests("PATCH", path)
    assert report.uploaded == 1
    # The retried first chunk gets a 409 with the server's offset, and the upload goes on from there.
    assert len(chunks) == 4
    assert download(blob_demo_server, blob.sha256).content == content


def test_uploaded_blob_survives_restart(blob_demo_server, tablets):
    tablet = tablets.open("restart")
    blob = tablet.attachments.add(b"queued before the restart", kind="photo", content_type="image/jpeg")
    tablet.close()

    reopened = tablets.open("restart")
    report = reopened.attachments.upload_due()

    assert reopened.attachments.get(blob.sha256).state == BlobState.UPLOADED
    assert report.uploaded == 1


# -- events that reference blobs ------------------------------------------------------


def test_blob_uploaded_before_its_event(blob_demo_server, tablets):
    transport = FaultTransport()
    tablet = tablets.open(transport=transport)
    tablet.record(ORDER, "accepted")
    photo = os.urandom(5_000)
    attachment = record_attachment(tablet, ORDER, photo, content_type="image/jpeg")

    tablet.sync()

    sent = [(request.method, request.path) for request in transport.sent]
    chunk_index = sent.index(("PATCH", f"/v1/blobs/{attachment.event.payload['sha256']}/upload"))
    event_posts = [
        index
        for index, request in enumerate(transport.sent)
        if request.path == "/v1/events" and attachment.event.client_event_id in request.client_event_ids()
    ]
    assert event_posts == [event_posts[0]]
    assert chunk_index < event_posts[0]
    assert tablet.outbox()[-1].decision.status.value == "ACCEPTED"


def test_signature_uploaded_and_readable_by_engineer(blob_demo_server, tablets):
    tablet = tablets.open()
    tablet.record(ORDER, "accepted")
    strokes = b"\x89PNG signature strokes"
    entry = record_signature(tablet, ORDER, strokes, signer_name="M. Keller")

    tablet.sync()

    sha256 = entry.event.payload["sha256"]
    with blob_demo_server.client("engineer", ENGINEER, ENGINEER) as http:
        response = http.get(f"/v1/blobs/{sha256}")
    assert tablet.outbox()[-1].decision.status.value == "ACCEPTED"
    assert response.content == strokes


def test_event_with_unqueued_hash_sent_at_once(blob_demo_server, tablets):
    """An event whose hash the queue does not know is not held: the blob may come from another device."""
    tablet = tablets.open()
    tablet.record(ORDER, "accepted")
    sha256 = hashlib.sha256(b"uploaded elsewhere").hexdigest()
    tablet.record(
        ORDER, "attachment_added", {"sha256": sha256, "kind": "photo", "content_type": "image/jpeg", "size_bytes": 18}
    )

    tablet.sync()

    assert tablet.pending_count() == 0
    assert event_types(blob_demo_server, ORDER)[-1] == "attachment_added"


# -- adding blobs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["not a type", "text/plain; charset=utf-8", "", "image", "image/", "/jpeg", "x" * 130 + "/y"]
)
def test_invalid_media_type_not_recorded(blob_demo_server, tablets, content_type):
    tablet = tablets.open()
    tablet.sync()

    with pytest.raises(InvalidEvent) as raised:
        record_attachment(tablet, ORDER, b"abc", content_type=content_type)
    with pytest.raises(InvalidEvent):
        record_signature(tablet, ORDER, b"abc", signer_name="R. Meyer", content_type=content_type)

    assert raised.value.field == "content_type"
    assert "media type" in str(raised.value)
    assert tablet.attachments.blobs() == []
    assert tablet.outbox() == []
    # Nothing is held, so a later event of the same order goes at once.
    tablet.record(ORDER, "accepted")
    assert tablet.sync().accepted == 1


def test_same_content_queued_once(tablets, tmp_path):
    tablet = tablets.open()
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"one photo")

    from_path = tablet.attachments.add(source, kind="photo", content_type="image/jpeg")
    from_bytes = tablet.attachments.add(b"one photo", kind="photo", content_type="image/jpeg")
    source.unlink()

    assert from_path.sha256 == from_bytes.sha256 == hashlib.sha256(b"one photo").hexdigest()
    assert len(tablet.attachments.blobs()) == 1
    assert tablet.attachments.upload_due().uploaded == 1


def test_local_copy_removed_after_upload(tablets):
    tablet = tablets.open()
    blob = tablet.attachments.add(b"photo on a full tablet", kind="photo", content_type="image/jpeg")
    copy = tablet.attachments.folder / blob.sha256
    queued_copy_exists = copy.exists()

    tablet.attachments.upload_due()
    again = tablet.attachments.add(b"photo on a full tablet", kind="photo", content_type="image/jpeg")

    assert queued_copy_exists
    assert not copy.exists()
    assert again.state == BlobState.UPLOADED
    assert list(tablet.attachments.folder.iterdir()) == []


def test_unknown_kind_rejected(tablets):
    tablet = tablets.open()

    with pytest.raises(ValueError, match="video"):
        tablet.attachments.add(b"clip", kind="video", content_type="video/mp4")

    assert tablet.attachments.blobs() == []


def test_missing_source_file_rejected(tablets, tmp_path):
    tablet = tablets.open()

    with pytest.raises(FileNotFoundError):
        tablet.attachments.add(tmp_path / "gone.jpg", kind="photo", content_type="image/jpeg")

    assert tablet.attachments.blobs() == []


def test_deleted_local_copy_marks_blob_failed(tablets):
    tablet = tablets.open()
    blob = tablet.attachments.add(b"copy removed by hand", kind="photo", content_type="image/jpeg")
    (tablet.attachments.folder / blob.sha256).unlink()

    report = tablet.attachments.upload_due()

    assert report.failed == 1
    assert tablet.attachments.get(blob.sha256).state == BlobState.FAILED


def test_invalid_media_type_marks_blob_failed(tablets):
    """A blob queued by an SDK version without the media type check fails at upload with the server's 422."""
    tablet = tablets.open()
    blob = tablet.attachments.add(b"typed wrongly", kind="document", content_type="text/plain")
    with tablet.store.transaction() as db:
        db.execute("UPDATE attachment_uploads SET content_type = ? WHERE sha256 = ?", ["not a media type", blob.sha256])

    report = tablet.attachments.upload_due()

    failed = tablet.attachments.get(blob.sha256)
    assert report.failed == 1
    assert failed.state == BlobState.FAILED
    assert "422" in failed.last_error
