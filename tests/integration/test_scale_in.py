"""Safe scale-in: SIGTERM a worker mid-map and nothing runs twice or is lost.

A private Redis and real prefork workers. The first worker is told to stop (SIGTERM,
what an autoscaler or ``systemctl stop`` sends) while a map runs on it; a second one
starts afterwards and finishes what the first gave back.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from picloud_compat.client import session
from picloud_compat.client.jobs import Client
from picloud_compat.settings import Settings
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker, wait_for

pytestmark = pytest.mark.timeout(240)


def _record_and_sleep(path: str, seconds: float, x: int) -> int:
    with open(path, "a") as f:
        f.write(f"{x}\n")
    time.sleep(seconds)
    return x


@pytest.fixture
def private_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, Client]]:
    ensure_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis-scale-in"))
    server.start()
    client = session.cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "t1")
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def _worker(server: RedisServer, tmp: Path, name: str, grace: float) -> Worker:
    w = Worker(
        server.url,
        SIGNING_KEY,
        tmp,
        concurrency=2,
        queues="c1",
        name=name,
        env={"PICLOUD_DRAIN_GRACE": str(grace)},
    )
    w.start()
    return w


def _stop_and_time(w: Worker) -> float:
    assert w.proc is not None
    started = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    w.proc.wait(timeout=60)
    return time.monotonic() - started


def test_sigterm_mid_map_gives_back_unstarted_jobs(private_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, client = private_cluster
    log = tmp_path / "ran"
    first = _worker(server, tmp_path, "first", grace=30)
    try:
        jids = client.map(_record_and_sleep, [str(log)] * 40, [0.2] * 40, range(40))
        wait_for(lambda: log.exists() and len(log.read_text().split()) >= 6, 30, "some jobs")
        took = _stop_and_time(first)
    finally:
        first.stop()
    assert took < 10, f"the worker took {took:.1f}s to stop: it should only finish running jobs"
    done_before = sum(s == "done" for s in client.status(jids))
    assert 0 < done_before < 40
    assert all(s in ("done", "queued") for s in client.status(jids))  # nothing left processing
    second = _worker(server, tmp_path, "second", grace=30)
    try:
        assert client.result(jids, timeout=120) == list(range(40))
    finally:
        second.stop()
    runs = Counter(int(x) for x in log.read_text().split())
    assert set(runs) == set(range(40)) and set(runs.values()) == {1}  # each ran exactly once
    assert {e["attempts"] for e in client.info(jids, ["attempts"]).values()} == {1}


def test_jobs_overrunning_the_grace_are_recovered_not_lost(private_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, client = private_cluster
    log = tmp_path / "ran"
    first = _worker(server, tmp_path, "first", grace=1)
    try:
        jid = client.call(_record_and_sleep, str(log), 5, 7)
        wait_for(lambda: log.exists(), 30, "the long job to start")
        took = _stop_and_time(first)
    finally:
        first.stop()
    assert took < 10, f"the worker took {took:.1f}s to stop with a 1 s grace"
    assert client.status(jid) == "queued"  # restartable: back in the queue, not lost
    second = _worker(server, tmp_path, "second", grace=30)
    try:
        assert client.result(jid, timeout=60) == 7
    finally:
        second.stop()
    assert log.read_text().split() == ["7", "7"]  # cut short once, then run to the end
    assert client.info(jid, ["attempts"])[jid]["attempts"] == 2
