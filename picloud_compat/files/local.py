"""`LocalFileStore`: `cloud.files` on a local directory, for the simulator.

Same names and semantics as S3: ``<files_dir>/<api key>/<name>``. Writes go to a
temporary file renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from picloud_compat.files.base import FileNotFound, file_md5

_PARTIAL = ".partial-"


class LocalFileStore:
    """The simulator's `FileStore`: one directory per tenant under `root`."""

    def __init__(self, root: Path, tenant: str) -> None:
        self.root = (root / tenant).resolve()

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if os.path.commonpath([path, self.root]) != str(self.root) or path == self.root:
            raise ValueError(f"file name {name!r} escapes the file store")
        return path

    def put(self, name: str, stream: IO[bytes], size: int, md5: str) -> None:
        """Write atomically (temp file then rename); md5 is recomputed on demand."""
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_PARTIAL)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(1 << 20):
                    out.write(block)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def open(self, name: str, start: int = 0, end: int | None = None) -> tuple[IO[bytes], int]:
        """The file positioned at `start`, capped at `end` (inclusive), and its size."""
        path = self._path(name)
        if not path.is_file():
            raise FileNotFound(name)
        size = path.stat().st_size
        if start > 0 and start >= size:
            raise ValueError(f"byte range {start}-{end} is outside {name!r}")
        f = open(path, "rb")  # noqa: SIM115 - handed to the caller
        f.seek(start)
        if end is None:
            return f, size
        return _Limited(f, end - start + 1), size

    def list(self, prefix: str = "") -> list[str]:
        """Sorted names under `prefix`, skipping uploads still in progress."""
        if not self.root.is_dir():
            return []
        names = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(_PARTIAL):
                name = path.relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    def md5(self, name: str) -> str | None:
        """Hex md5 computed by reading the file; None if it does not exist."""
        path = self._path(name)
        if not path.is_file():
            return None
        with open(path, "rb") as f:
            return file_md5(f)[0]

    def delete(self, name: str) -> bool:
        """Remove the file; True if it existed."""
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


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
