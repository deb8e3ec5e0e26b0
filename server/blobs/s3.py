"""Blob store on an S3-compatible service through aioboto3."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import botocore.config
import botocore.exceptions
import structlog

from .store import READ_CHUNK_BYTES, BlobStoreError, check_sha256

log = structlog.get_logger("csdp.blobs")

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}

# A readiness probe waits at most this long for the bucket's HEAD, so a hung
# endpoint makes /ready fail fast instead of stalling the load balancer.
CHECK_TIMEOUT_SECONDS = 2.0

# botocore's "standard" retry mode retries throttling and 5xx responses with
# backoff. Three attempts keep a dead endpoint from stalling a request for long.
_CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
)


class S3BlobStore:
    """Blobs as objects `<prefix><sha256>` in one bucket, which must exist before the server starts."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.description = f"s3 bucket {bucket} at {endpoint_url or 'AWS'}"
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
        )
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def open(self) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(self._session.client("s3", endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG))
            await self._client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            await stack.aclose()
            code = exc.response.get("Error", {}).get("Code", "")
            raise BlobStoreError(
                f"the bucket {self.bucket!r} at {self.endpoint_url or 'AWS'} cannot be used (S3 error {code}); "
                "create it or check CSDP_BLOB_S3_BUCKET and the credentials"
            ) from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            await stack.aclose()
            raise BlobStoreError(f"the S3 endpoint {self.endpoint_url or 'AWS'} cannot be reached: {exc}") from exc
        self._exit_stack = stack

    async def close(self) -> None:
        if self._exit_stack is not None:
            stack, self._exit_stack = self._exit_stack, None
            self._client = None
            await stack.aclose()

    async def check(self) -> None:
        client = self._require_client()
        try:
            await asyncio.wait_for(client.head_bucket(Bucket=self.bucket), CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            raise BlobStoreError(
                f"the bucket {self.bucket!r} at {self.endpoint_url or 'AWS'} did not respond within {CHECK_TIMEOUT_SECONDS:g} s; check that the S3 endpoint is running"
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise BlobStoreError(f"the bucket {self.bucket!r} at {self.endpoint_url or 'AWS'} cannot be used (S3 error {code})") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise BlobStoreError(f"the S3 endpoint {self.endpoint_url or 'AWS'} cannot be reached: {exc}") from exc

    def _key(self, sha256: str) -> str:
        return self.prefix + check_sha256(sha256)

    def _require_client(self) -> Any:
        if self._client is None:
            raise BlobStoreError(f"the blob store {self.description} is not open")
        return self._client

    async def put_file(self, sha256: str, path: Path, content_type: str) -> None:
        client = self._require_client()
        try:
            # upload_file switches to a multipart upload for large files.
            await client.upload_file(
                str(path), self.bucket, self._key(sha256), ExtraArgs={"ContentType": content_type}
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            raise BlobStoreError(f"writing blob {sha256} to {self.description} failed: {exc}") from exc

    async def size(self, sha256: str) -> int | None:
        client = self._require_client()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES:
                return None
            raise BlobStoreError(f"reading blob {sha256} from {self.description} failed: {exc}") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise BlobStoreError(f"reading blob {sha256} from {self.description} failed: {exc}") from exc
        return int(response["ContentLength"])

    async def read_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        client = self._require_client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES:
                raise BlobStoreError(f"blob {sha256} is missing from {self.description}") from None
            raise BlobStoreError(f"reading blob {sha256} from {self.description} failed: {exc}") from exc
        body = response["Body"]
        try:
            while chunk := await body.read(READ_CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def delete(self, sha256: str) -> None:
        client = self._require_client()
        try:
            await client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise BlobStoreError(f"deleting blob {sha256} from {self.description} failed: {exc}") from exc
