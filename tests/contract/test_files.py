"""`cloud.files` on a real S3 API (moto server) and on the simulator's directory store."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from picloud_compat.files.base import FileNotFound

pytestmark = pytest.mark.timeout(120)


def test_put_get_roundtrip_and_md5(cloud, tmp_path):
    src = tmp_path / "data.bin"
    payload = os.urandom(300_000)
    src.write_bytes(payload)
    assert cloud.files.put(str(src)) == "data.bin"
    assert cloud.files.put(str(src), "dir/copy.bin") == "dir/copy.bin"
    assert cloud.files.exists("data.bin") and not cloud.files.exists("nope.bin")
    assert cloud.files.get_md5("dir/copy.bin") == hashlib.md5(payload).hexdigest()
    out = tmp_path / "down" / "nested" / "x.bin"
    cloud.files.get("dir/copy.bin", str(out))
    assert out.read_bytes() == payload
    assert cloud.files.list() == ["data.bin", "dir/copy.bin"]
    assert cloud.files.list("dir/") == ["dir/copy.bin"]


def test_byte_ranges(cloud, tmp_path):
    cloud.files.putf(io.BytesIO(bytes(range(256)) * 4), "range.bin")
    part = tmp_path / "part"
    cloud.files.get("range.bin", str(part), start_byte=10, end_byte=19)
    assert part.read_bytes() == bytes(range(10, 20))
    tail = cloud.files.getf("range.bin", start_byte=1020)
    assert tail.read() == bytes(range(252, 256))
    with pytest.raises(ValueError):
        cloud.files.getf("range.bin", start_byte=5000)
    with pytest.raises(ValueError):
        cloud.files.get("range.bin", str(part), start_byte=10, end_byte=5)


def test_getf_is_a_read_only_file(cloud):
    text = b"alpha\nbeta\ngamma"
    cloud.files.putf(text, "lines.txt")
    f = cloud.files.getf("lines.txt")
    assert f.md5 == hashlib.md5(text).hexdigest()
    assert f.readline() == b"alpha\n"
    assert f.tell() == 6
    assert f.read(2) == b"be"
    assert list(f) == [b"ta\n", b"gamma"]
    f.close()
    with pytest.raises(ValueError):
        f.read()
    assert cloud.files.getf("lines.txt").readlines() == [b"alpha\n", b"beta\n", b"gamma"]


def test_putf_from_strings_and_pipes(cloud):
    cloud.files.putf("hello", "s.txt")
    r, w = os.pipe()
    os.write(w, b"through a pipe")
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        cloud.files.putf(pipe, "p.txt")
    assert cloud.files.getf("s.txt").read() == b"hello"
    assert cloud.files.getf("p.txt").read() == b"through a pipe"


def test_missing_files_and_delete(cloud, tmp_path):
    with pytest.raises(FileNotFound):
        cloud.files.get("missing.txt", str(tmp_path / "m"))
    with pytest.raises(cloud.CloudException):
        cloud.files.getf("missing.txt")
    with pytest.raises(FileNotFound):
        cloud.files.get_md5("missing.txt")
    with pytest.raises(FileNotFoundError):
        cloud.files.put(str(tmp_path / "no-such-local-file"))
    cloud.files.putf(b"x", "gone.txt")
    assert cloud.files.delete("gone.txt") is True
    assert cloud.files.delete("gone.txt") is False
    assert not cloud.files.exists("gone.txt")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs",
        "../x",
        "a/../../b",
        "a//b",
        "a/",
        ".",
        "..",
        "a\\..\\b",
        "x\x00y",
        "line\nbreak",
        "x" * 1025,
    ],
)
def test_bad_names_are_refused(cloud, name):
    with pytest.raises(ValueError):
        cloud.files.putf(b"data", name)
    with pytest.raises(ValueError):
        cloud.files.exists(name)


def test_names_that_look_odd_but_stay_inside(cloud):
    for name in ("..%2fx", "%2e%2e/y", "\uff0e\uff0e/z", "tenantA-evil"):
        cloud.files.putf(b"ok", name)
        assert cloud.files.getf(name).read() == b"ok"


def test_oversize_files_are_refused_before_reading(cloud, tmp_path):
    big = tmp_path / "sparse"
    with open(big, "wb") as f:
        f.truncate(5 * 1024**3 + 1)  # sparse: costs no disk
    with pytest.raises(ValueError, match="5 GB"):
        cloud.files.put(str(big))


def test_sync_both_ways(cloud, tmp_path):
    src = tmp_path / "sync.txt"
    src.write_text("v1")
    assert cloud.files.sync_to_cloud(str(src)) is True
    assert cloud.files.sync_to_cloud(str(src)) is False  # unchanged: nothing uploaded
    src.write_text("v2")
    assert cloud.files.sync_to_cloud(str(src)) is True
    dest = tmp_path / "back.txt"
    assert cloud.files.sync_from_cloud("sync.txt", str(dest)) is True
    assert cloud.files.sync_from_cloud("sync.txt", str(dest)) is False
    assert dest.read_text() == "v2"


def test_files_from_inside_a_job(cloud):
    cloud.files.putf(b"3 4 5", "numbers.txt")
    jid = cloud.call(_sum_file, "numbers.txt", "total.txt")
    assert cloud.result(jid, timeout=60) == 12
    assert cloud.files.getf("total.txt").read() == b"12"


def _sum_file(name, out):
    import cloud

    total = sum(int(x) for x in cloud.files.getf(name).read().split())
    cloud.files.putf(str(total), out)
    return total


def test_each_api_key_has_its_own_files(cloud, client, mode, request):
    from tests.conftest import make_cluster_client, make_simulator_client

    cloud.files.putf(b"mine", "private.txt")
    if mode == "cluster":
        other = make_cluster_client(
            request.getfixturevalue("cluster_settings"), "other" + client.tenant
        )
    else:
        other = make_simulator_client(
            request.getfixturevalue("local_cluster"), "other" + client.tenant
        )
    from picloud_compat.files import api

    assert not api.exists(other.files, "private.txt")
    assert api.list_names(other.files) == []
    with pytest.raises(FileNotFound):
        api.getf(other.files, "private.txt")
    assert api.delete(other.files, "private.txt") is False
    assert cloud.files.getf("private.txt").read() == b"mine"
    other.hub.close()


def test_names_are_flat_keys_as_on_s3(cloud):
    """A name may be a prefix of another, have a segment longer than a file system's
    NAME_MAX, or look like a temporary file: each is a file of its own, in both modes."""
    long_segment = "s" * 300 + "/" + "t" * 600
    names = ["logs", "logs/today", "logs/today/x", ".partial-upload", long_segment]
    for i, name in enumerate(names):
        cloud.files.putf(f"content {i}".encode(), name)
    for i, name in enumerate(names):
        assert cloud.files.getf(name).read() == f"content {i}".encode()
    assert cloud.files.list("logs") == ["logs", "logs/today", "logs/today/x"]
    assert set(names) <= set(cloud.files.list())
    assert cloud.files.delete("logs") is True
    assert cloud.files.list("logs") == ["logs/today", "logs/today/x"]
    assert cloud.files.getf("logs/today", start_byte=8).read() == b"1"
