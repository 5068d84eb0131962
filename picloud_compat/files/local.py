"""`LocalFileStore`: `cloud.files` on a local directory, for the simulator.

Names are flat keys, as on S3: ``logs`` and ``logs/today`` are two files, a segment
may be longer than the file system allows (NAME_MAX is 255 bytes; names go to 1,024),
and no name is reserved. So a file is not stored under its name but under the sha256
of it, ``<files_dir>/.objects/<api key>/<2 hex>/<64 hex>``, and starts with a header
holding the name (read back by `list`). Writes go to a temporary file in ``tmp/``
renamed into place, so a reader never sees half a file; temporary files a crashed
writer left are removed after a day.

Files an earlier version kept under their own names (``<files_dir>/<api key>/<name>``)
are moved into this layout when the store is first opened.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import IO

from picloud_compat.files.base import FileNotFound, file_md5

_MAGIC = b"PCF1"
_LENGTH = struct.Struct(">I")
_STALE_PARTIAL = 86400.0
"""Seconds after which a temporary file is taken as abandoned by a crashed writer."""


class LocalFileStore:
    """The simulator's `FileStore`: one directory per tenant under `root`."""

    def __init__(self, root: Path, tenant: str) -> None:
        self.root = (root / ".objects" / tenant).resolve()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._sweep_partials()
        legacy = root / tenant
        if legacy.is_dir():
            self._adopt(legacy)

    def _path(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        return self.root / digest[:2] / digest

    def put(self, name: str, stream: IO[bytes], size: int, md5: str) -> None:
        """Write atomically (temp file then rename); md5 is recomputed on demand."""
        path = self._path(name)
        encoded = name.encode("utf-8", "surrogatepass")
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_MAGIC + _LENGTH.pack(len(encoded)) + encoded)
                while block := stream.read(1 << 20):
                    out.write(block)
            path.parent.mkdir(exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def open(self, name: str, start: int = 0, end: int | None = None) -> tuple[IO[bytes], int]:
        """The file positioned at `start`, capped at `end` (inclusive), and its size."""
        try:
            f = open(self._path(name), "rb")  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise FileNotFound(name) from None
        try:
            header = _read_header(f, name)
            size = os.fstat(f.fileno()).st_size - header
            if start > 0 and start >= size:
                raise ValueError(f"byte range {start}-{end} is outside {name!r}")
            f.seek(header + start)
        except BaseException:
            f.close()
            raise
        if end is None:
            return f, size
        return _Limited(f, end - start + 1), size

    def list(self, prefix: str = "") -> list[str]:
        """Sorted names starting with `prefix`, read from the files' headers."""
        names = []
        for bucket in self.root.iterdir():
            if len(bucket.name) != 2 or not bucket.is_dir():
                continue  # tmp/: uploads still in progress
            for path in bucket.iterdir():
                try:
                    with open(path, "rb") as f:
                        name = _stored_name(f)
                except (FileNotFoundError, ValueError):
                    continue  # deleted meanwhile, or not ours
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    def md5(self, name: str) -> str | None:
        """Hex md5 computed by reading the file; None if it does not exist."""
        try:
            f, _ = self.open(name)
        except FileNotFound:
            return None
        with f:
            return file_md5(f)[0]

    def delete(self, name: str) -> bool:
        """Remove the file; True if it existed."""
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def _sweep_partials(self) -> None:
        cutoff = time.time() - _STALE_PARTIAL
        for partial in self._tmp.iterdir():
            try:
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
            except FileNotFoundError:
                continue

    def _adopt(self, legacy: Path) -> None:
        """Move the files of the earlier layout (named by their paths) into this one."""
        paths = sorted(
            Path(top, leaf)
            for top, _, leaves in os.walk(legacy)  # symlinked directories not followed
            for leaf in leaves
        )
        for path in paths:
            if path.is_symlink() or not path.is_file() or path.name.startswith(".partial-"):
                continue  # not a stored file; or an upload in progress that never finished
            name = path.relative_to(legacy).as_posix()
            if self._path(name).exists():
                continue  # written since in this layout: newer
            try:
                with open(path, "rb") as f:
                    self.put(name, f, path.stat().st_size, "")
            except FileNotFoundError:
                continue  # another process adopted it first
        shutil.rmtree(legacy, ignore_errors=True)


def _stored_name(f: IO[bytes]) -> str:
    head = f.read(len(_MAGIC) + _LENGTH.size)
    if len(head) < len(_MAGIC) + _LENGTH.size or not head.startswith(_MAGIC):
        raise ValueError("not a stored file")
    (length,) = _LENGTH.unpack(head[len(_MAGIC) :])
    return f.read(length).decode("utf-8", "surrogatepass")


def _read_header(f: IO[bytes], name: str) -> int:
    """Skip the header of `name`'s file; its length."""
    if _stored_name(f) != name:  # sha256 collisions are not expected; say so if one is
        raise ValueError(f"the stored file for {name!r} holds another name")
    return f.tell()


class _Limited:
    """At most `remaining` bytes of an open file."""

    def __init__(self, f: IO[bytes], remaining: int) -> None:
        self._f, self._remaining = f, remaining

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        wanted = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._f.read(wanted)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._f.close()
