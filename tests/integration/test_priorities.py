"""`_priority`: lower numbers run first, FIFO within a priority (Redis priority steps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from picloud_compat.client.session import cluster_client
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker

pytestmark = pytest.mark.timeout(120)


def test_lower_priority_numbers_run_first(tmp_path: Path):
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    c = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "prio")
    worker = Worker(server.url, SIGNING_KEY, tmp_path, concurrency=1, queues="c2")
    ledger = tmp_path / "ledger"
    try:
        # queued while no worker runs: the order of execution is the queue's order alone
        low = [
            c.call(jf.append_line, str(ledger), f"low{i}", _type="c2", _priority=9)
            for i in range(3)
        ]
        default = [c.call(jf.append_line, str(ledger), f"mid{i}", _type="c2") for i in range(2)]
        high = [
            c.call(jf.append_line, str(ledger), f"high{i}", _type="c2", _priority=0)
            for i in range(2)
        ]
        other_type = c.call(jf.noop, _type="m1")
        worker.start()
        c.join(low + default + high, timeout=60)
        assert ledger.read_text().split() == [
            "high0",
            "high1",
            "mid0",
            "mid1",
            "low0",
            "low1",
            "low2",
        ]
        assert c.status(other_type) == "queued"  # no m1 worker: it waits for one
    finally:
        c.hub.close()
        worker.stop()
        server.stop()
