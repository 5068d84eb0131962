"""Executors (``isolation = "tenant"``): one process per tenant, memory limits per type.

Real parts: the isolated cluster (password-protected Redis, a prefork worker running
jobs in per-tenant executors inside memory cgroups, the gateway) and isolated clients
holding only an API key and secret.
"""

from __future__ import annotations

import os

import pytest

from picloud_compat.errors import CloudException

pytestmark = pytest.mark.timeout(240)


def _who() -> tuple[int, int, int]:
    return os.getuid(), os.getpid(), os.getppid()


def _allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[i] = 1
    return len(block) // (1024 * 1024)


def _nested_square(x: int) -> int:
    import cloud

    return cloud.result(cloud.call(lambda y: y * y, x), timeout=60)


@pytest.fixture
def two_tenants(isolated_cluster):  # type: ignore[no-untyped-def]
    a = isolated_cluster.client(*isolated_cluster.new_key("a"))
    b = isolated_cluster.client(*isolated_cluster.new_key("b"))
    yield a, b
    for c in (a, b):
        c.close()


def test_tenants_never_share_a_process_or_a_uid(two_tenants, isolated_cluster):
    a, b = two_tenants
    a_seen = a.result([a.call(_who) for _ in range(4)], timeout=60)
    b_seen = b.result([b.call(_who) for _ in range(4)], timeout=60)
    a_uids, b_uids = {u for u, _, _ in a_seen}, {u for u, _, _ in b_seen}
    assert a_uids == {200_000 + int(a.tenant)} and b_uids == {200_000 + int(b.tenant)}
    assert not {p for _, p, _ in a_seen} & {p for _, p, _ in b_seen}
    pool_pids = set(isolated_cluster.worker.children())
    assert {pp for _, _, pp in a_seen + b_seen} <= pool_pids  # executors of pool processes


def test_a_job_over_its_memory_limit_errors_naming_the_limit(two_tenants):
    a, b = two_tenants
    hog = a.call(_allocate, 450, _type="c1")  # c1: 300 MB
    fine = b.call(_allocate, 50, _type="c1")
    with pytest.raises(CloudException) as info:
        a.result(hog, timeout=120)
    assert "memory limit" in str(info.value) and "300 MB" in str(info.value)
    assert a.status(hog) == "error"
    assert a.info(hog, ["attempts"])[hog]["attempts"] == 1  # not re-run as a lost worker
    assert b.result(fine, timeout=60) == 50  # the other tenant's job was not touched
    assert a.result(a.call(_allocate, 10, _type="c1"), timeout=60) == 10  # a new executor


def test_memory_is_measured_per_job(two_tenants):
    a, _ = two_tenants
    small, big = a.call(_allocate, 5, _type="c2"), a.call(_allocate, 200, _type="c2")
    a.result([small, big], timeout=120)
    info = a.info([small, big], ["memory.max_usage", "memory.failcnt"])
    assert info[big]["memory.max_usage"] >= 200 * 1024 * 1024
    assert info[small]["memory.max_usage"] < info[big]["memory.max_usage"] - 150 * 1024 * 1024
    assert info[big]["memory.failcnt"] == 0


def test_nested_jobs_run_inside_an_executor(two_tenants):
    a, _ = two_tenants
    assert a.result(a.map(_nested_square, range(6)), timeout=120) == [x * x for x in range(6)]


def _files_inside_a_job(name: str) -> bytes:
    import cloud

    cloud.files.putf(b"written from inside an executor", name)
    return cloud.files.getf(name).read()


def test_a_job_uses_cloud_files_through_its_pool_process(two_tenants):  # type: ignore[no-untyped-def]
    a, b = two_tenants
    assert a.result(a.call(_files_inside_a_job, "inside.txt"), timeout=60) == (
        b"written from inside an executor"
    )
    assert b.mode.files(b.tenant).list("") == []  # in A's space only
