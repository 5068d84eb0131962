"""The `cloud.files` contract, and the read-only file object `getf` returns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, Protocol

from picloud_compat.errors import CloudException


class FileNotFound(CloudException):
    """No file of that name in this API key's space."""

    def __init__(self, name: str) -> None:
        super().__init__(f"file {name!r} does not exist", status=404)


class FileStore(Protocol):
    """Per-tenant blob storage. Names are validated by the caller (`names.py`)."""

    def put(self, name: str, stream: IO[bytes], size: int, md5: str) -> None:
        """Store `size` bytes from `stream` (whose md5 the caller computed) as `name`."""

    def open(self, name: str, start: int = 0, end: int | None = None) -> tuple[IO[bytes], int]:
        """A binary stream of bytes [start, end] (inclusive) and the object's total size."""

    def list(self, prefix: str = "") -> list[str]:
        """Names (sorted) starting with `prefix`."""

    def md5(self, name: str) -> str | None:
        """Hex md5 of the whole content, None if the file does not exist."""

    def delete(self, name: str) -> bool:
        """Remove `name`; True if it existed."""


def file_md5(stream: IO[bytes], chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex md5, size) of a seekable stream, read from its current position to the end."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while True:
        block = stream.read(chunk)
        if not block:
            return digest.hexdigest(), size
        digest.update(block)
        size += len(block)


class CloudFile:
    """What `cloud.files.getf` returns: a read-only, forward-only binary file."""

    def __init__(self, name: str, stream: IO[bytes], md5: str | None, filesize: int) -> None:
        self.name = name
        self.md5 = md5
        self.filesize = filesize
        self._stream = stream
        self._buffer = b""
        self._pos = 0
        self.closed = False

    def _fill(self, wanted: int | None) -> None:
        while wanted is None or len(self._buffer) < wanted:
            block = self._stream.read(1 << 16)
            if not block:
                return
            self._buffer += block

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that remain if negative); b'' at the end."""
        self._check()
        if size is None or size < 0:
            self._fill(None)
            data, self._buffer = self._buffer, b""
        else:
            self._fill(size)
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        self._pos += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        """The next line, newline included (at most `size` bytes if given)."""
        self._check()
        while b"\n" not in self._buffer:
            before = len(self._buffer)
            self._fill(before + (1 << 16))
            if len(self._buffer) == before:
                break
        end = self._buffer.find(b"\n")
        end = len(self._buffer) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, size)
        data, self._buffer = self._buffer[:end], self._buffer[end:]
        self._pos += len(data)
        return data

    def readlines(self) -> list[bytes]:
        """All remaining lines."""
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def tell(self) -> int:
        """Bytes read so far (the stream cannot seek)."""
        return self._pos

    def close(self) -> None:
        """Release the underlying download stream (safe to call twice)."""
        if not self.closed:
            self.closed = True
            self._stream.close()

    def __enter__(self) -> CloudFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed CloudFile")
