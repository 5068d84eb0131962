"""`LocalFileStore`: `cloud.files` on a local directory, for the simulator.

Names are flat keys, as on S3: ``logs`` and ``logs/today`` are two files, a segment
may be longer than the file system allows (NAME_MAX is 255 bytes; names go to 1,024),
and no name is reserved. So a file is not stored under its name but under the sha256
of it, ``<files_dir>/.objects/<api key>/<2 hex>/<64 hex>``, and starts with a header
holding the name (read back by `list`). Writes go to a temporary file in ``tmp/``
renamed into place, so a reader never sees half a file; temporary files a crashed
writer left are removed after a day.

Files an earlier version kept under their own names (``<files_dir>/<api key>/<name>``)
are moved into this layout when the store is opened (see `LocalFileStore._adopt`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import IO

from picloud_compat.files.base import FileNotFound, file_md5

log = logging.getLogger(__name__)
_MAGIC = b"PCF1"
_CLAIM = ".adopting-"
"""Prefix (then the adopting process's pid and '-') of a legacy file being adopted."""
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
        tmp, path = self._write(name, stream)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _write(self, name: str, stream: IO[bytes]) -> tuple[str, Path]:
        """`stream` written, after the header, to a temporary file; it and its place."""
        path = self._path(name)
        encoded = name.encode("utf-8", "surrogatepass")
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_MAGIC + _LENGTH.pack(len(encoded)) + encoded)
                while block := stream.read(1 << 20):
                    out.write(block)
            path.parent.mkdir(exist_ok=True)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp, path

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
        """Move the files of the earlier layout (named by their paths) into this one.

        Processes may open the store at once: each file is first renamed to a claim in
        its own directory, so exactly one of them adopts it, and an adopted copy never
        replaces a file written since (it is linked into place, not renamed). A file
        that cannot be read stays (tried again at the next open) with a warning; the
        rest of the store works."""
        for top, dirs, leaves in os.walk(legacy, topdown=False):  # links not followed
            for leaf in leaves:
                self._adopt_one(legacy, Path(top, leaf))
            for directory in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(Path(top, directory))  # emptied (or not ours to empty)
        with contextlib.suppress(OSError):
            legacy.rmdir()  # a symlink to a directory stays, emptied

    def _adopt_one(self, legacy: Path, path: Path) -> None:
        leaf = path.name
        if leaf.startswith(_CLAIM):  # another process's claim: adopt it if that died
            pid, _, leaf = leaf[len(_CLAIM) :].partition("-")
            if not pid.isdigit() or _alive(int(pid)):
                return
        if path.is_symlink() or not leaf:
            return  # not a stored file: left alone
        if leaf.startswith(".partial-"):  # an earlier version's upload that never finished
            with contextlib.suppress(OSError):
                path.unlink()
            return
        name = path.with_name(leaf).relative_to(legacy).as_posix()
        claimed = path.with_name(f"{_CLAIM}{os.getpid()}-{leaf}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return  # another process claimed it first
        except OSError:  # a name too long for the claim: adopt in place
            claimed = path
        try:
            with open(claimed, "rb") as f:
                tmp, place = self._write(name, f)
            try:
                os.link(tmp, place)  # never over a file written since
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
            claimed.unlink()
        except OSError as exc:
            log.warning("cloud.files: could not move %s into the store: %s", path, exc)
            with contextlib.suppress(OSError):
                os.rename(claimed, path)  # left for the next try


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
