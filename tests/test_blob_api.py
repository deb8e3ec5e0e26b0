"""The blob upload and download API over HTTP: resumable uploads, hash checks, limits and the download scope."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import Clients, assigned, created, event, post_batch
from catalog_helpers import asset, post_catalog, site
from conftest import LiveServer, start_server, stop_server
from seaweedfs import seaweed_s3  # noqa: F401 - the session fixture, used by name

from server.config import Settings

MAX_BLOB_BYTES = 300_000
ENGINEER = "e-1"
OTHER_ENGINEER = "e-2"
CHUNK_TYPE = {"Content-Type": "application/offset+octet-stream"}


def serve(settings: Settings) -> Iterator[LiveServer]:
    server, thread, base_url = start_server(settings)
    try:
        yield LiveServer(base_url=base_url, settings=settings)
    finally:
        stop_server(server, thread)


@pytest.fixture
def blob_server(settings: Settings) -> Iterator[LiveServer]:
    yield from serve(dataclasses.replace(settings, blob_max_bytes=MAX_BLOB_BYTES))


@pytest.fixture
def clients(blob_server: LiveServer) -> Iterator[Clients]:
    pool = Clients(blob_server)
    yield pool
    pool.close()


def engineer(clients: Clients, engineer_id: str = ENGINEER) -> httpx.Client:
    return clients.anonymous(
        headers={"Authorization": f"Bearer {clients.live.token('engineer', engineer_id, engineer_id)}"}
    )


def declare(http: httpx.Client, content: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    body = {"sha256": hashlib.sha256(content).hexdigest(), "size_bytes": len(content), "content_type": content_type}
    return http.post("/v1/blobs", json=body)


def send_chunk(http: httpx.Client, sha256: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
    return http.patch(
        f"/v1/blobs/{sha256}/upload", content=data, headers={**CHUNK_TYPE, "Upload-Offset": str(offset), **headers}
    )


def upload(http: httpx.Client, content: bytes, content_type: str = "image/jpeg") -> str:
    """Declare and send `content` in one chunk; return its hash."""
    sha256 = hashlib.sha256(content).hexdigest()
    assert declare(http, content, content_type).status_code == 200
    response = send_chunk(http, sha256, 0, content)
    assert response.status_code == 200, response.text
    assert response.json()["complete"] is True
    return sha256


def assigned_order(clients: Clients, work_order_id: str, engineer_id: str = ENGINEER) -> None:
    admin = clients("admin", "admin-1")
    post_catalog(admin, [site("site-stuttgart"), asset("cnc-101", "site-stuttgart")])
    decisions = post_batch(admin, [created(work_order_id), assigned(work_order_id, engineer_id)])
    assert [decision["status"] for decision in decisions] == ["ACCEPTED", "ACCEPTED"]
    accepted = post_batch(engineer(clients, engineer_id), [event(work_order_id, "accepted", 2)])
    assert accepted[0]["status"] == "ACCEPTED"


def attachment_event(work_order_id: str, sha256: str, size: int, base_version: int = 3) -> dict[str, Any]:
    payload = {"sha256": sha256, "kind": "photo", "content_type": "image/jpeg", "size_bytes": size}
    return event(work_order_id, "attachment_added", base_version, payload)


# -- uploads ---------------------------------------------------------------------


def test_upload_in_chunks_then_download(clients):
    http = clients("dispatcher", "d-1")
    content = os.urandom(100_000)
    sha256 = hashlib.sha256(content).hexdigest()

    declared = declare(http, content)
    first = send_chunk(http, sha256, 0, content[:40_000])
    probe = http.get(f"/v1/blobs/{sha256}/upload")
    second = send_chunk(http, sha256, 40_000, content[40_000:])
    download = http.get(f"/v1/blobs/{sha256}")

    assert declared.status_code == 200
    assert declared.json() == {
        "sha256": sha256, "size_bytes": 100_000, "content_type": "image/jpeg", "offset": 0, "complete": False
    }
    assert first.json()["offset"] == 40_000
    assert probe.json()["offset"] == 40_000
    assert probe.json()["complete"] is False
    assert second.json()["offset"] == 100_000
    assert second.json()["complete"] is True
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "image/jpeg"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment")


def test_declare_after_partial_upload_reports_offset(clients):
    http = clients("dispatcher", "d-1")
    content = os.urandom(50_000)
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    send_chunk(http, sha256, 0, content[:10_000])

    again = declare(clients("dispatcher", "d-2"), content)

    assert again.status_code == 200
    assert again.json()["offset"] == 10_000


def test_upload_resumes_after_server_restart(settings):
    settings = dataclasses.replace(settings, blob_max_bytes=MAX_BLOB_BYTES)
    content = os.urandom(60_000)
    sha256 = hashlib.sha256(content).hexdigest()
    for live in serve(settings):
        pool = Clients(live)
        http = pool("dispatcher", "d-1")
        declare(http, content)
        send_chunk(http, sha256, 0, content[:25_000])
        pool.close()

    for live in serve(settings):
        pool = Clients(live)
        http = pool("dispatcher", "d-1")
        offset = http.get(f"/v1/blobs/{sha256}/upload").json()["offset"]
        finished = send_chunk(http, sha256, offset, content[offset:])
        download = http.get(f"/v1/blobs/{sha256}")
        pool.close()

    assert offset == 25_000
    assert finished.json()["complete"] is True
    assert download.content == content


def test_staged_upload_finished_by_empty_chunk(clients):
    """A staged upload that reached its size but was not stored (the store failed) is finished by an empty chunk."""
    http = clients("dispatcher", "d-1")
    content = b"complete but not stored"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    staging = clients.live.settings.blob_staging_dir / f"{sha256}.part"
    staging.write_bytes(content)

    probe = http.get(f"/v1/blobs/{sha256}/upload")
    finished = send_chunk(http, sha256, len(content), b"")

    assert probe.json()["offset"] == len(content)
    assert probe.json()["complete"] is False
    assert finished.json()["complete"] is True
    assert http.get(f"/v1/blobs/{sha256}").content == content


def test_declare_stored_blob_reports_complete(clients):
    http = clients("dispatcher", "d-1")
    content = b"already here"
    upload(http, content)

    again = declare(http, content)

    assert again.json()["complete"] is True
    assert again.json()["offset"] == len(content)


def test_two_devices_share_one_upload(clients):
    first = engineer(clients)
    second = engineer(clients, OTHER_ENGINEER)
    content = os.urandom(30_000)
    sha256 = hashlib.sha256(content).hexdigest()
    declare(first, content)
    send_chunk(first, sha256, 0, content[:10_000])

    joined = declare(second, content)
    finished = send_chunk(second, sha256, 10_000, content[10_000:])
    late = send_chunk(first, sha256, 10_000, content[10_000:20_000])

    assert joined.json()["offset"] == 10_000
    assert finished.json()["complete"] is True
    assert late.status_code == 200
    assert late.json()["complete"] is True
    # Only the subject that sent the last chunk counts as the uploader.
    assert second.get(f"/v1/blobs/{sha256}").content == content
    assert first.get(f"/v1/blobs/{sha256}").status_code == 403


def test_chunk_after_completion_changes_nothing(clients):
    http = clients("dispatcher", "d-1")
    content = b"lost response"
    sha256 = upload(http, content)

    retried = send_chunk(http, sha256, 0, content)

    assert retried.status_code == 200
    assert retried.json()["complete"] is True
    assert http.get(f"/v1/blobs/{sha256}").content == content


def test_empty_blob_upload(clients):
    http = clients("dispatcher", "d-1")
    sha256 = hashlib.sha256(b"").hexdigest()

    declared = declare(http, b"", "text/plain")
    finished = send_chunk(http, sha256, 0, b"")

    assert declared.json()["complete"] is False
    assert finished.json()["complete"] is True
    assert http.get(f"/v1/blobs/{sha256}").content == b""


# -- bad input -----------------------------------------------------------------


def test_wrong_hash_rejected_and_discarded(clients):
    http = clients("dispatcher", "d-1")
    content = b"the real photo"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = send_chunk(http, sha256, 0, b"another photo!")
    probe = http.get(f"/v1/blobs/{sha256}/upload")

    assert response.status_code == 422
    assert response.json()["reason"] == "hash_mismatch"
    assert response.json()["value"] == hashlib.sha256(b"another photo!").hexdigest()
    assert "upload the content again from offset 0" in response.json()["message"]
    assert probe.json()["offset"] == 0
    assert probe.json()["complete"] is False


def test_upload_restarts_after_wrong_hash(clients):
    http = clients("dispatcher", "d-1")
    content = b"the real photo"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    send_chunk(http, sha256, 0, b"another photo!")

    response = send_chunk(http, sha256, 0, content)

    assert response.json()["complete"] is True


@pytest.mark.parametrize("size", [MAX_BLOB_BYTES + 1, 2**70])
def test_oversize_declaration_rejected(clients, size):
    http = clients("dispatcher", "d-1")

    response = http.post("/v1/blobs", json={"sha256": "a" * 64, "size_bytes": size, "content_type": "video/mp4"})

    assert response.status_code == 413
    assert response.json()["field"] == "$.size_bytes"
    assert response.json()["value"] == size
    assert response.json()["limit"] == MAX_BLOB_BYTES


def test_chunk_beyond_declared_size_rejected(clients):
    http = clients("dispatcher", "d-1")
    content = b"twelve bytes"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = send_chunk(http, sha256, 0, content + b"extra")

    assert response.status_code == 413
    assert response.json()["limit"] == len(content)
    assert "remaining 12 bytes" in response.json()["message"]


def test_chunk_larger_than_body_limit_rejected(blob_server):
    settings = dataclasses.replace(blob_server.settings, max_body_bytes=1000)
    for live in serve(settings):
        pool = Clients(live)
        http = pool("dispatcher", "d-1")
        content = os.urandom(5000)
        sha256 = hashlib.sha256(content).hexdigest()
        declare(http, content)

        response = send_chunk(http, sha256, 0, content)
        pool.close()

        assert response.status_code == 413
        assert "smaller chunks" in response.json()["message"]


@pytest.mark.parametrize("offset", [5, 99])
def test_chunk_at_wrong_offset_rejected(clients, offset):
    http = clients("dispatcher", "d-1")
    content = os.urandom(100)
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    send_chunk(http, sha256, 0, content[:10])

    response = send_chunk(http, sha256, offset, content[offset:])

    assert response.status_code == 409
    assert response.json()["reason"] == "offset_mismatch"
    assert response.json()["offset"] == 10
    assert response.json()["value"] == offset


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "", "99999999999999999999", "0x10", "1e3"])
def test_invalid_offset_header_rejected(clients, raw):
    http = clients("dispatcher", "d-1")
    content = b"offset checks"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = http.patch(f"/v1/blobs/{sha256}/upload", content=content, headers={**CHUNK_TYPE, "Upload-Offset": raw})

    assert response.status_code == 422
    assert response.json()["field"] == "Upload-Offset"


def test_missing_offset_header_rejected(clients):
    http = clients("dispatcher", "d-1")
    content = b"offset checks"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = http.patch(f"/v1/blobs/{sha256}/upload", content=content, headers=CHUNK_TYPE)

    assert response.status_code == 422
    assert "Upload-Offset header is missing" in response.json()["message"]


def test_empty_chunk_rejected(clients):
    http = clients("dispatcher", "d-1")
    content = b"not empty"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = send_chunk(http, sha256, 0, b"")

    assert response.status_code == 422
    assert response.json()["field"] == "body"


@pytest.mark.parametrize("content_type", ["application/json", "image/jpeg", "", "text/plain; charset=utf-8"])
def test_chunk_content_type_rejected(clients, content_type):
    http = clients("dispatcher", "d-1")
    content = b"typed chunk"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = http.patch(
        f"/v1/blobs/{sha256}/upload", content=content, headers={"Content-Type": content_type, "Upload-Offset": "0"}
    )

    assert response.status_code == 415
    assert response.json()["field"] == "Content-Type"


def test_plain_octet_stream_chunk_accepted(clients):
    http = clients("dispatcher", "d-1")
    content = b"plain octets"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)

    response = send_chunk(http, sha256, 0, content, **{"Content-Type": "application/octet-stream"})

    assert response.json()["complete"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sha256": "xyz", "size_bytes": 1, "content_type": "image/png"}, "$.sha256"),
        ({"sha256": "A" * 64, "size_bytes": 1, "content_type": "image/png"}, "$.sha256"),
        ({"sha256": "a" * 64, "size_bytes": -1, "content_type": "image/png"}, "$.size_bytes"),
        ({"sha256": "a" * 64, "size_bytes": "10", "content_type": "image/png"}, "$.size_bytes"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "<script>"}, "$.content_type"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "image"}, "$.content_type"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "image/png; charset=x"}, "$.content_type"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "a/" + "b" * 200}, "$.content_type"),
        ({"sha256": "a" * 64, "size_bytes": 1}, "$.content_type"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "image/png", "owner": "e-9"}, "$.owner"),
        ({"sha256": "a" * 64, "size_bytes": True, "content_type": "image/png"}, "$.size_bytes"),
        ({"sha256": "a" * 64, "size_bytes": None, "content_type": "image/png"}, "$.size_bytes"),
        ({"sha256": "a" * 64, "size_bytes": 1.5, "content_type": "image/png"}, "$.size_bytes"),
        ({"sha256": "a" * 64, "size_bytes": 1, "content_type": "image/pngé"}, "$.content_type"),
        ({"sha256": "a" * 63 + "\u0000", "size_bytes": 1, "content_type": "image/png"}, "$.sha256"),
        ({"sha256": ["a" * 64], "size_bytes": 1, "content_type": "image/png"}, "$.sha256"),
    ],
)
def test_invalid_declaration_rejected(clients, body, field):
    http = clients("dispatcher", "d-1")

    response = http.post("/v1/blobs", json=body)

    assert response.status_code == 422
    assert response.json()["field"] == field


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"sha256": "' + b"a" * 64 + b'", "size_bytes": 1e400}', b"\xff\xfe"])
def test_malformed_declaration_rejected(clients, raw):
    http = clients("dispatcher", "d-1")

    response = http.post("/v1/blobs", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code in (400, 422)
    assert "message" in response.json()


def test_declaration_with_other_size_conflicts(clients):
    http = clients("dispatcher", "d-1")
    content = b"sized content"
    declare(http, content)

    response = http.post(
        "/v1/blobs",
        json={"sha256": hashlib.sha256(content).hexdigest(), "size_bytes": len(content) + 1, "content_type": "image/png"},
    )

    assert response.status_code == 409
    assert response.json()["reason"] == "size_conflict"


@pytest.mark.parametrize("path", ["/v1/blobs/{sha}/upload", "/v1/blobs/{sha}"])
def test_unknown_blob_not_found(clients, path):
    http = clients("dispatcher", "d-1")

    response = http.get(path.format(sha="c" * 64))

    assert response.status_code == 404
    assert response.json()["reason"] == "blob_not_found"


def test_chunk_for_undeclared_blob_not_found(clients):
    http = clients("dispatcher", "d-1")

    response = send_chunk(http, "c" * 64, 0, b"data")

    assert response.status_code == 404
    assert "POST /v1/blobs" in response.json()["message"]


@pytest.mark.parametrize("sha", ["abc", "C" * 64, "g" * 64, "a" * 65, "a" * 63 + "%00", "a" * 63 + "%C3%A9"])
def test_invalid_hash_in_path_rejected(clients, sha):
    http = clients("dispatcher", "d-1")

    response = http.get(f"/v1/blobs/{sha}")

    assert response.status_code == 422
    assert response.json()["field"] == "sha256"


def test_unknown_query_parameter_rejected(clients):
    http = clients("dispatcher", "d-1")

    response = http.get(f"/v1/blobs/{'c' * 64}", params={"download": "1"})

    assert response.status_code == 422


def test_incomplete_blob_not_downloadable(clients):
    http = clients("dispatcher", "d-1")
    content = b"half sent"
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    send_chunk(http, sha256, 0, content[:4])

    response = http.get(f"/v1/blobs/{sha256}")

    assert response.status_code == 404
    assert response.json()["reason"] == "blob_not_uploaded"


def test_upload_requires_token(clients):
    anonymous = clients.anonymous()

    response = anonymous.post("/v1/blobs", json={"sha256": "a" * 64, "size_bytes": 1, "content_type": "image/png"})

    assert response.status_code == 401


# -- download scope ----------------------------------------------------------------


def test_engineer_downloads_own_upload(clients):
    mine = engineer(clients)
    sha256 = upload(mine, b"my photo")

    response = mine.get(f"/v1/blobs/{sha256}")

    assert response.status_code == 200
    assert response.content == b"my photo"


def test_engineer_denied_blob_of_others(clients):
    sha256 = upload(engineer(clients, OTHER_ENGINEER), b"their photo")

    response = engineer(clients).get(f"/v1/blobs/{sha256}")

    assert response.status_code == 403
    assert response.json()["reason"] == "blob_not_permitted"


def test_engineer_gets_same_403_for_missing_blob(clients):
    response = engineer(clients).get(f"/v1/blobs/{'d' * 64}")

    assert response.status_code == 403
    assert response.json()["reason"] == "blob_not_permitted"


def test_engineer_downloads_blob_of_assigned_order(clients):
    work_order_id = f"wo-{uuid.uuid4().hex[:8]}"
    assigned_order(clients, work_order_id)
    content = b"photo uploaded by the office"
    sha256 = upload(clients("dispatcher", "d-1"), content)
    post_batch(engineer(clients), [attachment_event(work_order_id, sha256, len(content))])

    response = engineer(clients).get(f"/v1/blobs/{sha256}")
    other = engineer(clients, OTHER_ENGINEER).get(f"/v1/blobs/{sha256}")

    assert response.status_code == 200
    assert response.content == content
    assert other.status_code == 403


def test_engineer_loses_access_after_reassignment(clients):
    work_order_id = f"wo-{uuid.uuid4().hex[:8]}"
    assigned_order(clients, work_order_id)
    content = b"photo of the spindle"
    sha256 = upload(clients("dispatcher", "d-1"), content)
    post_batch(engineer(clients), [attachment_event(work_order_id, sha256, len(content))])
    admin = clients("admin", "admin-1")
    post_batch(admin, [event(work_order_id, "reassigned", 4, {"engineer_id": OTHER_ENGINEER})])

    before = engineer(clients).get(f"/v1/blobs/{sha256}")
    after = engineer(clients, OTHER_ENGINEER).get(f"/v1/blobs/{sha256}")

    assert before.status_code == 403
    assert after.status_code == 200


@pytest.mark.parametrize("role", ["dispatcher", "manager", "admin"])
def test_office_roles_download_any_blob(clients, role):
    sha256 = upload(engineer(clients), b"field photo")

    response = clients(role, f"{role}-1").get(f"/v1/blobs/{sha256}")

    assert response.status_code == 200
    assert response.content == b"field photo"


def test_event_referencing_missing_blob_is_accepted(clients):
    """The server decides events without looking at blobs; the reference waits until the bytes arrive."""
    work_order_id = f"wo-{uuid.uuid4().hex[:8]}"
    assigned_order(clients, work_order_id)
    content = b"photo sent after its event"
    sha256 = hashlib.sha256(content).hexdigest()

    decision = post_batch(engineer(clients), [attachment_event(work_order_id, sha256, len(content))])[0]
    before = engineer(clients).get(f"/v1/blobs/{sha256}")
    declare(engineer(clients), content)
    pending = engineer(clients).get(f"/v1/blobs/{sha256}")
    send_chunk(engineer(clients), sha256, 0, content)
    after = engineer(clients).get(f"/v1/blobs/{sha256}")

    assert decision["status"] == "ACCEPTED"
    assert before.status_code == 404
    assert before.json()["reason"] == "blob_not_found"
    assert pending.json()["reason"] == "blob_not_uploaded"
    assert after.content == content


# -- S3 backend ----------------------------------------------------------------------


@pytest.fixture
def s3_blob_server(settings: Settings, seaweed_s3) -> Iterator[LiveServer]:
    yield from serve(
        dataclasses.replace(
            settings,
            blob_backend="s3",
            blob_s3_bucket=seaweed_s3.bucket,
            blob_s3_endpoint_url=seaweed_s3.endpoint_url,
            blob_s3_access_key_id=seaweed_s3.access_key_id,
            blob_s3_secret_access_key=seaweed_s3.secret_access_key,
            blob_s3_prefix=f"api-{uuid.uuid4().hex[:8]}/",
        )
    )


def test_s3_backend_resumable_upload(s3_blob_server):
    pool = Clients(s3_blob_server)
    http = pool("dispatcher", "d-1")
    content = os.urandom(200_000)
    sha256 = hashlib.sha256(content).hexdigest()
    declare(http, content)
    send_chunk(http, sha256, 0, content[:70_000])

    resumed_at = http.get(f"/v1/blobs/{sha256}/upload").json()["offset"]
    finished = send_chunk(http, sha256, resumed_at, content[resumed_at:])
    download = http.get(f"/v1/blobs/{sha256}")
    pool.close()

    assert resumed_at == 70_000
    assert finished.json()["complete"] is True
    assert download.content == content


# The server thread ends with the startup error, which pytest reports as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_s3_backend_with_missing_bucket_fails_start(settings, seaweed_s3):
    broken = dataclasses.replace(
        settings,
        blob_backend="s3",
        blob_s3_bucket="missing-bucket",
        blob_s3_endpoint_url=seaweed_s3.endpoint_url,
        blob_s3_access_key_id=seaweed_s3.access_key_id,
        blob_s3_secret_access_key=seaweed_s3.secret_access_key,
    )

    with pytest.raises(RuntimeError, match="did not start"):
        start_server(broken)


# -- download headers ----------------------------------------------------------------


def test_declaration_with_other_media_type_conflicts(clients):
    http = clients("dispatcher", "d-1")
    content = b"typed content"
    declare(http, content, "text/plain")

    same = declare(http, content, "TEXT/Plain")
    other = declare(http, content, "image/jpeg")

    assert same.status_code == 200
    assert other.status_code == 409
    assert other.json()["reason"] == "content_type_conflict"
    assert other.json()["field"] == "$.content_type"
    assert "text/plain" in other.json()["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "application/json"])
def test_download_sends_declared_media_type(clients, content_type):
    http = clients("dispatcher", "d-1")
    sha256 = upload(http, f"notes as {content_type}".encode(), content_type)

    response = http.get(f"/v1/blobs/{sha256}")

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


def test_head_returns_headers_without_body(clients):
    http = clients("dispatcher", "d-1")
    content = b"head of a photo"
    sha256 = upload(http, content)

    response = http.head(f"/v1/blobs/{sha256}")

    assert response.status_code == 200, response.headers
    assert response.content == b""
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["etag"] == f'"{sha256}"'


def test_head_applies_engineer_scope(clients):
    sha256 = upload(engineer(clients, OTHER_ENGINEER), b"their head photo")

    denied = engineer(clients).head(f"/v1/blobs/{sha256}")
    missing = clients("dispatcher", "d-1").head(f"/v1/blobs/{'e' * 64}")
    invalid = clients("dispatcher", "d-1").head("/v1/blobs/XYZ")
    anonymous = clients.anonymous().head(f"/v1/blobs/{sha256}")

    assert denied.status_code == 403
    assert missing.status_code == 404
    assert invalid.status_code == 422
    assert anonymous.status_code == 401


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("if_none_match", ['"{sha}"', 'W/"{sha}"', '"other", "{sha}"', "*"])
def test_matching_etag_returns_304(clients, method, if_none_match):
    http = clients("dispatcher", "d-1")
    sha256 = upload(http, f"cached photo {method} {if_none_match}".encode())

    response = http.request(method, f"/v1/blobs/{sha256}", headers={"If-None-Match": if_none_match.format(sha=sha256)})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == f'"{sha256}"'


def test_other_etag_returns_body(clients):
    http = clients("dispatcher", "d-1")
    content = b"changed photo"
    sha256 = upload(http, content)

    response = http.get(f"/v1/blobs/{sha256}", headers={"If-None-Match": f'"{"0" * 64}"'})

    assert response.status_code == 200
    assert response.content == content


def test_engineer_gets_403_not_304_for_blob_of_others(clients):
    sha256 = upload(engineer(clients, OTHER_ENGINEER), b"their cached photo")

    response = engineer(clients).get(f"/v1/blobs/{sha256}", headers={"If-None-Match": f'"{sha256}"'})

    assert response.status_code == 403


def test_serve_with_missing_bucket_prints_one_error(tmp_path, seaweed_s3):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CSDP_")}
    env.update(
        CSDP_VAR_DIR=str(tmp_path / "var"),
        CSDP_BLOB_BACKEND="s3",
        CSDP_BLOB_S3_BUCKET="missing-bucket",
        CSDP_BLOB_S3_ENDPOINT_URL=seaweed_s3.endpoint_url,
        CSDP_BLOB_S3_ACCESS_KEY_ID=seaweed_s3.access_key_id,
        CSDP_BLOB_S3_SECRET_ACCESS_KEY=seaweed_s3.secret_access_key,
    )
    csdp = Path(sys.executable).parent / "csdp"

    result = subprocess.run(
        [str(csdp), "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "'missing-bucket'" in result.stderr
    assert "CSDP_BLOB_S3_BUCKET" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "ExceptionGroup" not in result.stderr + result.stdout
