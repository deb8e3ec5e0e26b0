"""Blob store settings: read from CSDP_BLOB_* variables, and every invalid value stops the start with a clear message."""

from __future__ import annotations

import pytest

from server.blobs import LocalBlobStore, create_blob_store
from server.blobs.s3 import S3BlobStore
from server.config import ConfigError, Settings

S3 = {"CSDP_BLOB_BACKEND": "s3", "CSDP_BLOB_S3_BUCKET": "csdp-blobs"}

BAD_VALUES = [
    ({"CSDP_BLOB_BACKEND": "gcs"}, "CSDP_BLOB_BACKEND='gcs' is invalid: expected one of local, s3"),
    ({"CSDP_BLOB_MAX_BYTES": "0"}, "CSDP_BLOB_MAX_BYTES='0' is invalid: expected a whole number greater than 0"),
    ({"CSDP_BLOB_MAX_BYTES": "10MB"}, "CSDP_BLOB_MAX_BYTES='10MB' is invalid"),
    ({"CSDP_BLOB_BACKEND": "s3"}, "CSDP_BLOB_S3_BUCKET is not set"),
    ({**S3, "CSDP_BLOB_S3_BUCKET": "Blobs_Bucket"}, "CSDP_BLOB_S3_BUCKET='Blobs_Bucket' is invalid"),
    ({**S3, "CSDP_BLOB_S3_BUCKET": "ab"}, "CSDP_BLOB_S3_BUCKET='ab' is invalid"),
    ({**S3, "CSDP_BLOB_S3_ENDPOINT_URL": "ftp://127.0.0.1:8333"}, "CSDP_BLOB_S3_ENDPOINT_URL='ftp://127.0.0.1:8333' is invalid"),
    ({**S3, "CSDP_BLOB_S3_ENDPOINT_URL": "http://127.0.0.1:0"}, "port 0 cannot be connected to"),
    ({**S3, "CSDP_BLOB_S3_ACCESS_KEY_ID": "key"}, "must be set together"),
    ({**S3, "CSDP_BLOB_S3_SECRET_ACCESS_KEY": "secret"}, "must be set together"),
    ({**S3, "CSDP_BLOB_S3_REGION": "eu central"}, "CSDP_BLOB_S3_REGION='eu central' is invalid"),
    ({**S3, "CSDP_BLOB_S3_PREFIX": "/absolute/"}, "CSDP_BLOB_S3_PREFIX='/absolute/' is invalid"),
    ({**S3, "CSDP_BLOB_DIR": "/srv/blobs"}, "CSDP_BLOB_DIR is set but CSDP_BLOB_BACKEND is s3"),
    ({"CSDP_BLOB_S3_BUCKET": "csdp-blobs"}, "CSDP_BLOB_S3_BUCKET is set but CSDP_BLOB_BACKEND is local"),
]


@pytest.mark.parametrize(("environ", "message"), BAD_VALUES, ids=[message[:40] for _, message in BAD_VALUES])
def test_bad_blob_setting_names_variable(tmp_path, environ, message):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CSDP_VAR_DIR": str(tmp_path), **environ})

    assert message in str(error.value)


def test_default_is_local_folder_under_var_dir(tmp_path):
    settings = Settings.from_env({"CSDP_VAR_DIR": str(tmp_path)})

    store = create_blob_store(settings)

    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"
    assert settings.blob_staging_dir == tmp_path / "blob-uploads"


def test_blob_dir_setting_moves_local_store(tmp_path):
    settings = Settings.from_env({"CSDP_VAR_DIR": str(tmp_path), "CSDP_BLOB_DIR": str(tmp_path / "elsewhere")})

    store = create_blob_store(settings)

    assert store.root == tmp_path / "elsewhere"


def test_s3_settings_build_s3_store(tmp_path):
    settings = Settings.from_env(
        {
            "CSDP_VAR_DIR": str(tmp_path),
            **S3,
            "CSDP_BLOB_S3_ENDPOINT_URL": "http://127.0.0.1:8333",
            "CSDP_BLOB_S3_ACCESS_KEY_ID": "key",
            "CSDP_BLOB_S3_SECRET_ACCESS_KEY": "secret",
            "CSDP_BLOB_S3_PREFIX": "tenant-1/",
            "CSDP_BLOB_MAX_BYTES": "5000",
        }
    )

    store = create_blob_store(settings)

    assert isinstance(store, S3BlobStore)
    assert store.bucket == "csdp-blobs"
    assert store.prefix == "tenant-1/"
    assert store.endpoint_url == "http://127.0.0.1:8333"
    assert settings.blob_max_bytes == 5000


def test_secret_key_not_in_settings_repr(tmp_path):
    settings = Settings.from_env(
        {"CSDP_VAR_DIR": str(tmp_path), **S3, "CSDP_BLOB_S3_ACCESS_KEY_ID": "key", "CSDP_BLOB_S3_SECRET_ACCESS_KEY": "top-secret"}
    )

    assert "top-secret" not in repr(settings)
