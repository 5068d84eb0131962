"""The simulator's file store: its on-disk layout, and files an earlier layout left."""

from __future__ import annotations

import io
import os
import socket
import subprocess
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
    assert sorted(p.name for p in legacy.iterdir()) == ["linked-dir", "linked-file"]  # not ours
    assert (outside / "secret").read_bytes() == b"not a stored file"
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


def test_a_legacy_directory_behind_a_symlink_is_emptied_not_readopted(tmp_path: Path) -> None:
    disk = tmp_path / "bigger-disk"
    disk.mkdir()
    (disk / "old.txt").write_bytes(b"old")
    (tmp_path / "t").symlink_to(disk)
    store = LocalFileStore(tmp_path, "t")
    assert store.list() == ["old.txt"]
    assert store.delete("old.txt") is True
    assert LocalFileStore(tmp_path, "t").list() == []  # deleted stays deleted


def test_adoption_never_replaces_newer_files_and_respects_live_claims(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path, "t")
    store.put("newer", io.BytesIO(b"NEW"), 3, "")
    legacy = tmp_path / "t"
    legacy.mkdir()
    (legacy / "newer").write_bytes(b"OLD")
    (legacy / f".adopting-{os.getppid()}-claimed").write_bytes(b"another process's")
    dead = _a_dead_pid()
    (legacy / f".adopting-{dead}-orphan").write_bytes(b"its adopter died")
    store = LocalFileStore(tmp_path, "t")
    assert _read(store, "newer") == b"NEW"
    assert store.list() == ["newer", "orphan"]
    assert _read(store, "orphan") == b"its adopter died"
    assert sorted(p.name for p in legacy.iterdir()) == [f".adopting-{os.getppid()}-claimed"]


def test_a_legacy_file_that_cannot_be_read_stays_and_the_store_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = tmp_path / "t"
    legacy.mkdir()
    (legacy / "fine.txt").write_bytes(b"fine")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(legacy / "a-socket"))  # open() fails on it (ENXIO), even for root
    try:
        store = LocalFileStore(tmp_path, "t")
        assert store.list() == ["fine.txt"]
        assert (legacy / "a-socket").exists()  # left for the next try
        assert "could not move" in caplog.text
    finally:
        listener.close()


def _a_dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
