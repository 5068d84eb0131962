"""The operations behind `cloud.files`, over any `FileStore`.

Same functions in the client, inside jobs, on the cluster (S3) and in the simulator
(a local directory). Whole-file downloads are checked against the stored md5.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from picloud_compat.errors import CloudException
from picloud_compat.files.base import CloudFile, FileNotFound, FileStore, file_md5
from picloud_compat.files.names import MAX_FILE_SIZE, validate_name, validate_prefix


def put(store: FileStore, source: str | os.PathLike[str], name: str | None = None) -> str:
    """Upload the local file `source` as `name` (default: its base name)."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no local file {str(path)!r}")
    name = validate_name(name if name is not None else path.name)
    with open(path, "rb") as f:
        _store(store, name, f)
    return name


def putf(store: FileStore, f: IO[bytes] | bytes | str, name: str) -> str:
    """Upload the rest of file-like `f` (or bytes / str content) as `name`."""
    name = validate_name(name)
    if isinstance(f, str):
        f = io.BytesIO(f.encode())
    elif isinstance(f, bytes | bytearray | memoryview):
        f = io.BytesIO(bytes(f))
    elif not hasattr(f, "read"):
        raise TypeError(f"putf needs a file-like object, bytes or str, got {type(f).__name__}")
    if _seekable(f):
        _store(store, name, f)
    else:  # a pipe or socket: spool it, so size and md5 are known before uploading
        with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
            while block := f.read(1 << 20):
                spool.write(block if isinstance(block, bytes) else block.encode())
            spool.seek(0)
            _store(store, name, spool)
    return name


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _store(store: FileStore, name: str, f: IO[bytes]) -> None:
    start = f.tell()
    size = f.seek(0, os.SEEK_END) - start  # refuse an over-size file before reading it
    if size > MAX_FILE_SIZE:
        raise ValueError(
            f"{name!r} is {size} bytes; files are limited to {MAX_FILE_SIZE} bytes (5 GB)"
        )
    f.seek(start)
    md5, size = file_md5(f)
    f.seek(start)
    store.put(name, f, size, md5)


def get(
    store: FileStore,
    name: str,
    destination: str | os.PathLike[str] | None = None,
    start_byte: int = 0,
    end_byte: int | None = None,
) -> str:
    """Download `name` (or bytes start_byte..end_byte, inclusive) to `destination`."""
    name = validate_name(name)
    _check_range(start_byte, end_byte)
    target = Path(destination) if destination is not None else Path(Path(name).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    whole = start_byte == 0 and end_byte is None
    expected = store.md5(name) if whole else None
    stream, _ = store.open(name, start_byte, end_byte)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(stream):
            while block := stream.read(1 << 20):
                out.write(block)
        if whole and expected is not None:
            with open(tmp, "rb") as check:
                actual = file_md5(check)[0]
            if actual != expected:
                raise CloudException(
                    f"download of {name!r} is corrupt (md5 {actual} != {expected})"
                )
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return str(target)


def getf(
    store: FileStore, name: str, start_byte: int = 0, end_byte: int | None = None
) -> CloudFile:
    """A read-only file object streaming `name` (or the inclusive byte range)."""
    name = validate_name(name)
    _check_range(start_byte, end_byte)
    stream, size = store.open(name, start_byte, end_byte)
    return CloudFile(name, stream, store.md5(name), size)


def list_names(store: FileStore, prefix: str | None = None) -> list[str]:
    """Sorted file names, optionally only those starting with `prefix`."""
    return store.list(validate_prefix(prefix))


def exists(store: FileStore, name: str) -> bool:
    """True if `name` is stored."""
    return store.md5(validate_name(name)) is not None


def delete(store: FileStore, name: str) -> bool:
    """Delete `name`; True if it existed."""
    return store.delete(validate_name(name))


def get_md5(store: FileStore, name: str) -> str:
    """Hex md5 of the stored content; FileNotFound if there is no such file."""
    md5 = store.md5(validate_name(name))
    if md5 is None:
        raise FileNotFound(name)
    return md5


def sync_to_cloud(
    store: FileStore, source: str | os.PathLike[str], name: str | None = None
) -> bool:
    """Upload only if the stored copy differs; True if something was uploaded."""
    path = Path(source)
    name = validate_name(name if name is not None else path.name)
    with open(path, "rb") as f:
        local = file_md5(f)[0]
    if store.md5(name) == local:
        return False
    put(store, path, name)
    return True


def sync_from_cloud(
    store: FileStore, name: str, destination: str | os.PathLike[str] | None = None
) -> bool:
    """Download only if the local copy differs; True if something was downloaded."""
    name = validate_name(name)
    target = Path(destination) if destination is not None else Path(Path(name).name)
    remote = store.md5(name)
    if remote is None:
        raise FileNotFound(name)
    if target.is_file():
        with open(target, "rb") as f:
            if file_md5(f)[0] == remote:
                return False
    get(store, name, target)
    return True


def _check_range(start: int, end: int | None) -> None:
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start_byte must be an integer >= 0, got {start!r}")
    if end is not None and (not isinstance(end, int) or end < start):
        raise ValueError(f"end_byte must be an integer >= start_byte, got {end!r}")
