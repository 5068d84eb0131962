"""S3 specifics: the md5 of multipart uploads (whose ETag is not an md5)."""

from __future__ import annotations

import hashlib
import os

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from picloud_compat.files import api, s3
from picloud_compat.files.s3 import S3FileStore


def test_md5_is_right_for_multipart_uploads(cluster_settings, tmp_path, monkeypatch):
    monkeypatch.setattr(
        s3,
        "_TRANSFER",
        TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20),
    )
    store = S3FileStore(cluster_settings, "multipart")
    data = os.urandom(12 * 2**20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    api.put(store, src)
    head = boto3.client("s3", endpoint_url=cluster_settings.s3_endpoint_url).head_object(
        Bucket=cluster_settings.s3_bucket, Key="files/multipart/big.bin"
    )
    assert head["ETag"].strip('"').endswith("-3")  # really multipart
    assert api.get_md5(store, "big.bin") == hashlib.md5(data).hexdigest()
    out = tmp_path / "out.bin"
    api.get(store, "big.bin", out)  # whole-file download verifies the md5
    assert out.read_bytes() == data


def test_unreachable_s3_is_a_clear_error(cluster_settings):
    from picloud_compat.errors import ConnectionFailed
    from tests.harness import free_port

    settings = cluster_settings.replace(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionFailed, match="cannot reach S3"):
        api.exists(S3FileStore(settings, "nobody"), "x")
