"""The simulator's file store: its on-disk layout, and files an earlier layout left."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from picloud_compat.files.local import LocalFileStore


def _read(store: LocalFileStore, name: str) -> bytes:
    f, _ = store.open(name)
    try:
        return f.read()
    finally:
        f.close()


def test_files_of_the_earlier_layout_are_adopted(tmp_path: Path) -> None:
    legacy = tmp_path / "tenant1"
    (legacy / "logs").mkdir(parents=True)
    (legacy / "logs" / "a.txt").write_bytes(b"A")
    (legacy / "top.bin").write_bytes(b"TOP")
    (legacy / "logs" / ".partial-abc").write_bytes(b"half an upload")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not a stored file")
    (legacy / "linked-file").symlink_to(outside / "secret")
    (legacy / "linked-dir").symlink_to(outside)
    store = LocalFileStore(tmp_path, "tenant1")
    assert store.list() == ["logs/a.txt", "top.bin"]
    assert _read(store, "logs/a.txt") == b"A" and _read(store, "top.bin") == b"TOP"
    assert not legacy.exists()
    assert LocalFileStore(tmp_path, "tenant2").list() == []  # tenants stay apart


def test_abandoned_uploads_are_swept_and_never_listed(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, "t")
    store.put("kept", io.BytesIO(b"x"), 1, "")
    old = store.root / "tmp" / "tmpabandoned"
    old.write_bytes(b"partial")
    fresh = store.root / "tmp" / "tmpinprogress"
    fresh.write_bytes(b"partial")
    day_ago = time.time() - 2 * 86400
    os.utime(old, (day_ago, day_ago))
    assert store.list() == ["kept"]
    LocalFileStore(tmp_path, "t")
    assert not old.exists() and fresh.exists()  # an upload in progress is left alone


def test_a_byte_range_past_the_end_is_refused(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, "t")
    store.put("f", io.BytesIO(b"0123456789"), 10, "")
    f, size = store.open("f", 2, 4)
    assert (f.read(), size) == (b"234", 10)
    f.close()
    with pytest.raises(ValueError, match="outside"):
        store.open("f", 10)
