"""A Redis SIGKILL and restart in the middle of a map (reliability.md F-3, profile A).

Redis runs with appendonly (fsync every second), so up to a second of writes may be lost;
the platform must still bring every job to `done` exactly once in its results, and a
`result()` call blocked during the outage must return after recovery.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from picloud_compat.client.session import cluster_client
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def test_map_survives_a_redis_kill_and_restart(tmp_path: Path):
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start(appendonly=True)
    fast = {"PICLOUD_LEASE_SECONDS": "3", "PICLOUD_ORPHAN_SECONDS": "3"}
    workers = [
        Worker(server.url, SIGNING_KEY, tmp_path, concurrency=2, name=f"r{i}", env=fast)
        for i in range(2)
    ]
    client = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "restart")
    try:
        for w in workers:
            w.start()
        jids = client.map(jf.sleep, [0.02] * 600, range(600))
        outcome: dict[str, object] = {}

        def wait() -> None:
            try:
                outcome["values"] = client.result(jids, timeout=180)
            except Exception as exc:  # reported below
                outcome["error"] = exc

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(2.5)  # part of the map is done, part is running, part queued
        server.stop(signal.SIGKILL)
        time.sleep(1)
        server.start(appendonly=True)
        waiter.join(200)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["values"] == list(range(600))
        assert set(client.status(jids)) == {"done"}
    finally:
        client.hub.close()
        for w in workers:
            w.stop()
        server.stop()


def test_a_redis_that_lost_its_data_never_answers_for_the_old_jobs(tmp_path: Path, caplog):
    """A Redis restarted empty numbers jobs from 1 again: a client that knew the old
    job 1 (its status, its inline result) must wait for the new job 1, not answer with
    the old one's value or call it unknown."""
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    worker = Worker(server.url, SIGNING_KEY, tmp_path, concurrency=1)
    client = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "wiped")
    try:
        worker.start()
        collected = client.call(jf.add, 100, 0)
        assert client.result(collected, timeout=60) == 100  # its result was taken
        cached = client.call(jf.add, 200, 0)
        client.join(cached, timeout=60)  # its inline result waits in the client
        server.stop(signal.SIGKILL)
        server.start()  # no persistence: everything is gone
        again = [client.call(jf.add, 1, 2), client.call(jf.add, 3, 4)]
        assert [int(j) for j in again] == [int(collected), int(cached)]  # numbers reused
        assert client.result(again, timeout=60) == [3, 7]
        assert "the store lost data" in caplog.text
    finally:
        client.close()
        worker.stop()
        server.stop()
