"""Big arguments and results in S3, a short reference in Redis.

Above ``offload_bytes`` (2 MiB by default, Modal's threshold) a sealed blob goes to
``blobs/<tenant>/<sha256>`` in the cluster's bucket and the job store keeps only
``PCREF1:<key>``, so Redis memory stays bounded by job counts, not by data sizes. The
blob is still sealed: whoever reads it back checks its MAC with the tenant's key, and a
reference is only followed under that tenant's own prefix. Blobs are named by content
(a map that passes the same big object to every job uploads it once) and are not
deleted with jobs: give the bucket a lifecycle rule on ``blobs/`` (deploy/README.md).

Team-mode clients and workers (which hold S3 credentials) offload; the simulator and
isolated clients (which hold none) keep every blob in the store.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from picloud_compat.errors import AuthenticityError
from picloud_compat.settings import Settings

REF = b"PCREF1:"
MULTIPART_ABOVE = 64 * 1024 * 1024
"""Blobs bigger than this are uploaded in parts (boto3's transfer manager)."""
_CLUSTER_SCHEMES = ("redis://", "rediss://", "sentinel://", "unix://")


class BlobOffload:
    """One tenant's big blobs in S3."""

    def __init__(self, settings: Settings, tenant: str, client: Any = None) -> None:
        self.threshold = settings.offload_bytes
        self.bucket = settings.s3_bucket
        self.prefix = f"blobs/{tenant}/"
        self.endpoint = settings.s3_endpoint_url
        self._region = settings.s3_region
        self._client = client

    @property
    def _s3(self) -> Any:
        """The S3 client, made on first use: most clients never send a big blob, and
        importing boto3 and making a client costs a large part of a second."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint or None, region_name=self._region
            )
        return self._client

    def outgoing(self, blob: bytes | memoryview) -> bytes | memoryview:
        """`blob` itself, or (when big) a reference to its copy in S3."""
        if len(blob) < self.threshold:
            return blob
        from picloud_compat.files.s3 import ensure_bucket, s3_errors

        data = bytes(blob)
        key = self.prefix + hashlib.sha256(data).hexdigest()
        ensure_bucket(self._s3, self.endpoint, self.bucket)
        with s3_errors("storing a big argument or result"):
            if len(data) <= MULTIPART_ABOVE:
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            else:  # in parts, in parallel (one PUT stops at 5 GB)
                self._s3.upload_fileobj(io.BytesIO(data), self.bucket, key)
        return REF + key.encode()

    def incoming(self, blob: bytes | memoryview) -> bytes | memoryview:
        """`blob` itself, or the blob a reference names (this tenant's only)."""
        if bytes(blob[: len(REF)]) != REF:
            return blob
        from picloud_compat.files.s3 import s3_errors

        key = bytes(blob[len(REF) :]).decode(errors="replace")
        if not key.startswith(self.prefix) or "/" in key[len(self.prefix) :]:
            raise AuthenticityError(f"refusing a blob reference outside this key's: {key[:80]!r}")
        with s3_errors("reading a big argument or result"):
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


def blob_offload(settings: Settings, tenant: str) -> BlobOffload | None:
    """The offload for a process of a team-mode cluster (None elsewhere, or when off)."""
    url = settings.server_url or ""
    if settings.offload_bytes <= 0 or not url.startswith(_CLUSTER_SCHEMES):
        return None
    return BlobOffload(settings, tenant)
