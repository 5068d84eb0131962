"""`S3FileStore`: `cloud.files` on S3 (AWS, MinIO, moto) through boto3.

Objects live under ``files/<api key>/<name>`` in one bucket. The md5 of every object is
computed while uploading and kept in its metadata, so `get_md5` is right for multipart
uploads too (their ETag is not an md5).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import IO, Any

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from picloud_compat.errors import ConnectionFailed
from picloud_compat.files.base import FileNotFound
from picloud_compat.settings import Settings

_TRANSFER = TransferConfig(
    multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024
)
_checked_buckets: set[tuple[str | None, str]] = set()
_lock = threading.Lock()


class S3FileStore:
    """The cluster's `FileStore`: objects under ``files/<tenant>/`` in one S3 bucket."""

    def __init__(self, settings: Settings, tenant: str, client: Any = None) -> None:
        self.bucket = settings.s3_bucket
        self.prefix = f"files/{tenant}/"
        self.endpoint = settings.s3_endpoint_url
        self._s3 = client or boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url or None, region_name=settings.s3_region
        )

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _ensure_bucket(self) -> None:
        ensure_bucket(self._s3, self.endpoint, self.bucket)

    def put(self, name: str, stream: IO[bytes], size: int, md5: str) -> None:
        """Upload, keeping md5 and size in metadata (a multipart ETag is not an md5)."""
        self._ensure_bucket()
        with s3_errors(f"uploading {name!r}"):
            self._s3.upload_fileobj(
                stream,
                self.bucket,
                self._key(name),
                ExtraArgs={"Metadata": {"md5": md5, "size": str(size)}},
                Config=_TRANSFER,
            )

    def open(self, name: str, start: int = 0, end: int | None = None) -> tuple[IO[bytes], int]:
        """A streaming body for the (ranged) GET and the object's total size."""
        self._ensure_bucket()
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end}"
        with s3_errors(f"downloading {name!r}"):
            try:
                reply = self._s3.get_object(Bucket=self.bucket, Key=self._key(name), **extra)
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in ("NoSuchKey", "404"):
                    raise FileNotFound(name) from None
                if code == "InvalidRange":
                    raise ValueError(f"byte range {start}-{end} is outside {name!r}") from None
                raise
        content_range = reply.get("ContentRange")
        total = int(content_range.rsplit("/", 1)[1]) if content_range else reply["ContentLength"]
        return reply["Body"], total

    def list(self, prefix: str = "") -> list[str]:
        """Sorted names under `prefix`, across all result pages."""
        self._ensure_bucket()
        names: list[str] = []
        with s3_errors("listing files"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                names.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return sorted(names)

    def md5(self, name: str) -> str | None:
        """The md5 from metadata, else a single-part ETag; None if missing or unknown."""
        self._ensure_bucket()
        with s3_errors(f"reading {name!r}"):
            try:
                head = self._s3.head_object(Bucket=self.bucket, Key=self._key(name))
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        stored = head.get("Metadata", {}).get("md5")
        if stored:
            return stored
        etag = head.get("ETag", "").strip('"')
        return etag if etag and "-" not in etag else None

    def delete(self, name: str) -> bool:
        """Delete the object; True if it existed (S3's delete alone cannot tell)."""
        if self.md5(name) is None and not self._exists_without_md5(name):
            return False
        with s3_errors(f"deleting {name!r}"):
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(name))
        return True

    def presign_put(self, name: str, md5: str, size: int, ttl: int) -> tuple[str, dict[str, str]]:
        """A URL (and the headers to send with it) that uploads exactly `name`, with its
        md5 and size as metadata, for `ttl` seconds: what an isolated client uses."""
        self._ensure_bucket()
        metadata = {"md5": md5, "size": str(size)}
        url = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._key(name), "Metadata": metadata},
            ExpiresIn=ttl,
        )
        return url, {f"x-amz-meta-{k}": v for k, v in metadata.items()}

    def presign_get(self, name: str, ttl: int) -> str:
        """A URL that downloads `name` (ranges allowed) for `ttl` seconds."""
        self._ensure_bucket()
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(name)}, ExpiresIn=ttl
            )
        )

    def _exists_without_md5(self, name: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(name))
            return True
        except botocore.exceptions.ClientError:
            return False


def ensure_bucket(s3: Any, endpoint: str | None, bucket: str) -> None:
    """Create the bucket on first use if it does not exist (handy with MinIO/moto)."""
    marker = (endpoint, bucket)
    with _lock:
        if marker in _checked_buckets:
            return
        with s3_errors("checking the bucket"):
            try:
                s3.head_bucket(Bucket=bucket)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                s3.create_bucket(Bucket=bucket)
        _checked_buckets.add(marker)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Unreachable S3 surfaces as ConnectionFailed, like an unreachable Redis."""
    try:
        yield
    except (
        botocore.exceptions.EndpointConnectionError,
        botocore.exceptions.ConnectTimeoutError,
    ) as exc:
        raise ConnectionFailed(f"{what} failed: cannot reach S3 ({exc})") from exc
