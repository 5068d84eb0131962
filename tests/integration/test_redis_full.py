"""Redis at ``maxmemory`` (refusing writes with OOM) in the middle of a map: workers ride it
out, and once memory is back every job finishes exactly once (no burnt messages, no
re-runs: `OutOfMemoryError` is recognised by type, not by message text)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from picloud_compat.client.session import cluster_client
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_a_full_redis_is_ridden_out_without_rerunning_jobs(tmp_path: Path):
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    worker = Worker(server.url, SIGNING_KEY, tmp_path, concurrency=2)
    c = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "full")
    admin = server.client()
    try:
        worker.start()
        ledger = tmp_path / "ledger"
        jids = c.map(
            jf.logged_sleep, [str(ledger)] * 120, [0.03] * 120, [str(i) for i in range(120)]
        )
        time.sleep(0.8)  # some jobs done, some running, most queued
        admin.config_set("maxmemory", 1)  # every write Redis would refuse: OOM
        time.sleep(4)
        stuck = c.status(jids)  # reads still work; nothing could be recorded meanwhile
        assert stuck.count("done") < 120, "Redis never refused a write"
        admin.config_set("maxmemory", 0)
        assert c.result(jids, timeout=120) == [str(i) for i in range(120)]
        attempts = [entry["attempts"] for entry in c.info(jids, ["attempts"]).values()]
        assert set(attempts) == {1}
        starts = [
            line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("start ")
        ]
        assert sorted(starts, key=int) == [str(i) for i in range(120)]  # each ran once
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
        c.close()
        worker.stop()
        server.stop()
