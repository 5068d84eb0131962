"""`RemoteFileStore`: `cloud.files` for a client that holds no S3 credentials.

Small operations (list, md5, delete) are answered by the trusted side; uploads and
downloads go directly to S3 through presigned URLs it issues for one object of this
tenant at a time, so file bytes never pass through the gateway.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from typing import IO, Any

from picloud_compat.errors import CloudException, ConnectionFailed
from picloud_compat.files.base import FileNotFound


class RemoteFileStore:
    """The tenant's files through a remote store's ``files_*`` calls."""

    def __init__(self, store: Any) -> None:
        self._store = store  # a RemoteStore: .call(method, *args)

    def put(self, name: str, stream: IO[bytes], size: int, md5: str) -> None:
        """Upload through a presigned PUT."""
        url, headers = self._store.call("files_put_url", name, md5, size)
        reply = _send("PUT", url, {**headers, "Content-Length": str(size)}, stream)
        body = reply.read()
        if reply.status not in (200, 201, 204):
            raise CloudException(
                f"uploading {name!r} failed: S3 answered {reply.status} {body[:200]!r}"
            )

    def open(self, name: str, start: int = 0, end: int | None = None) -> tuple[IO[bytes], int]:
        """A presigned, possibly ranged GET: its body stream and the object's size."""
        url = self._store.call("files_get_url", name)
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        reply = _send("GET", url, headers, None)
        if reply.status == 404:
            reply.read()
            raise FileNotFound(name)
        if reply.status == 416:
            reply.read()
            raise ValueError(f"byte range {start}-{end} is outside {name!r}")
        if reply.status not in (200, 206):
            raise CloudException(f"downloading {name!r} failed: S3 answered {reply.status}")
        content_range = reply.getheader("Content-Range")
        total = (
            int(content_range.rsplit("/", 1)[1])
            if content_range
            else int(reply.getheader("Content-Length") or 0)
        )
        return reply, total

    def list(self, prefix: str = "") -> list[str]:
        """Names under `prefix`, sorted."""
        return [str(n) for n in self._store.call("files_list", prefix)]

    def md5(self, name: str) -> str | None:
        """The stored md5, None if the file does not exist."""
        value = self._store.call("files_md5", name)
        return None if value is None else str(value)

    def delete(self, name: str) -> bool:
        """Remove `name`; True if it existed."""
        return bool(self._store.call("files_delete", name))


def _send(method: str, url: str, headers: dict[str, str], body: IO[bytes] | None) -> Any:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=300, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=300)
    try:
        conn.request(method, target, body=body, headers=headers)
        return conn.getresponse()
    except OSError as exc:
        conn.close()
        raise ConnectionFailed(f"cannot reach S3 at {parts.hostname}: {exc}") from None
