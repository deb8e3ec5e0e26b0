"""docker-compose.yml: valid for the docker-compose validator, with the services and health checks a site needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
VALIDATOR = shutil.which("docker-compose")


@pytest.fixture(scope="module")
def resolved() -> dict:  # type: ignore[type-arg]
    """The file as the validator resolves it: anchors merged and variables filled in with their defaults."""
    if VALIDATOR is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose); .ci/run installs it")
    result = subprocess.run(
        [VALIDATOR, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_valid():
    if VALIDATOR is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose); .ci/run installs it")

    result = subprocess.run([VALIDATOR, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, timeout=60, cwd=ROOT)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_compose_services(resolved):
    assert set(resolved["services"]) == {"postgres", "objects", "buckets", "migrate", "csdp-1", "csdp-2"}


@pytest.mark.parametrize("service", ["postgres", "objects", "csdp-1", "csdp-2"])
def test_compose_health_checks(resolved, service):
    check = resolved["services"][service]["healthcheck"]

    assert check["test"][0] == "CMD"
    assert check["retries"] >= 3


@pytest.mark.parametrize("replica", ["csdp-1", "csdp-2"])
def test_compose_replicas_wait_for_migration(resolved, replica):
    service = resolved["services"][replica]

    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert service["environment"]["CSDP_DATABASE_URL"].startswith("postgresql://csdp:")
    assert "/ready" in " ".join(service["healthcheck"]["test"])
    # Compose 1.29 prints the short form; the replicas publish their port on loopback only.
    assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])


@pytest.mark.parametrize("replica", ["csdp-1", "csdp-2"])
def test_compose_replicas_store_blobs_in_bucket(resolved, replica):
    service = resolved["services"][replica]
    environment = service["environment"]
    buckets = resolved["services"]["buckets"]

    assert environment["CSDP_BLOB_BACKEND"] == "s3"
    assert environment["CSDP_BLOB_S3_ENDPOINT_URL"] == "http://objects:9000"
    assert environment["CSDP_BLOB_S3_ACCESS_KEY_ID"] == resolved["services"]["objects"]["environment"]["MINIO_ROOT_USER"]
    assert buckets["command"] == ["mb", "--ignore-existing", f"objects/{environment['CSDP_BLOB_S3_BUCKET']}"]
    assert buckets["depends_on"]["objects"]["condition"] == "service_healthy"
    assert service["depends_on"]["buckets"]["condition"] == "service_completed_successfully"


def test_compose_migration_waits_for_database(resolved):
    migrate = resolved["services"]["migrate"]

    assert migrate["command"] == ["csdp", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_has_no_version_key():
    """Today's `docker compose` warns that the top-level version is obsolete, so the file has none."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())

    assert "version" not in document
