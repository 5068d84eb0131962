"""``cloud.files``: store files in this API key's space (S3 on a cluster, a local
directory on the simulator). Works the same from the client and inside jobs."""

from __future__ import annotations

import os
from typing import IO

from picloud_compat.client.session import get_client
from picloud_compat.files import api
from picloud_compat.files.base import CloudFile, FileNotFound

__all__ = [
    "CloudFile",
    "FileNotFound",
    "delete",
    "exists",
    "get",
    "get_md5",
    "getf",
    "list",
    "put",
    "putf",
    "sync_from_cloud",
    "sync_to_cloud",
]


def put(source: str | os.PathLike[str], name: str | None = None) -> str:
    """Upload local file `source` as `name` (default: its base name)."""
    return api.put(get_client().files, source, name)


def putf(f: IO[bytes] | bytes | str, name: str) -> str:
    """Upload the rest of file-like `f` (or bytes/str content) as `name`."""
    return api.putf(get_client().files, f, name)


def get(
    name: str, destination: str | None = None, start_byte: int = 0, end_byte: int | None = None
) -> str:
    """Download `name` (optionally bytes start_byte..end_byte inclusive) to `destination`."""
    return api.get(get_client().files, name, destination, start_byte, end_byte)


def getf(name: str, start_byte: int = 0, end_byte: int | None = None) -> CloudFile:
    """A read-only file object over `name` (read, readline, readlines, iteration, tell)."""
    return api.getf(get_client().files, name, start_byte, end_byte)


def list(prefix: str | None = None) -> list[str]:
    """Names of this key's files (optionally only those starting with `prefix`)."""
    return api.list_names(get_client().files, prefix)


def exists(name: str) -> bool:
    """True if this key has a file called `name`."""
    return api.exists(get_client().files, name)


def delete(name: str) -> bool:
    """Delete `name`; True if it existed."""
    return api.delete(get_client().files, name)


def get_md5(name: str) -> str:
    """Hex md5 of the stored file, e.g. to compare with a local copy without downloading."""
    return api.get_md5(get_client().files, name)


def sync_to_cloud(source: str, name: str | None = None) -> bool:
    """Upload only if the stored copy differs; True if uploaded."""
    return api.sync_to_cloud(get_client().files, source, name)


def sync_from_cloud(name: str, destination: str | None = None) -> bool:
    """Download only if the local copy differs; True if downloaded."""
    return api.sync_from_cloud(get_client().files, name, destination)
