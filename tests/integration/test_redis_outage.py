"""Redis unreachable at submit: a clear error within seconds, nothing half-written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from picloud_compat.client.session import cluster_client
from picloud_compat.errors import CloudException, ConnectionFailed
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker, free_port

pytestmark = pytest.mark.timeout(120)


def test_no_server_at_all():
    settings = Settings(server_url=f"redis://127.0.0.1:{free_port()}/0", signing_key=SIGNING_KEY)
    c = cluster_client(settings, "nobody")
    for _ in range(3):
        start = time.monotonic()
        with pytest.raises(ConnectionFailed, match="cannot reach the job store") as info:
            c.call(jf.add, 1, 2)
        assert time.monotonic() - start < 5
        assert isinstance(info.value, CloudException)
    with pytest.raises(ConnectionFailed):
        c.map(jf.square, range(100))


def test_redis_stops_and_comes_back(tmp_path: Path):
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start(appendonly=True)
    worker = Worker(server.url, SIGNING_KEY, tmp_path, concurrency=1)
    c = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "outage")
    try:
        worker.start()
        assert c.result(c.call(jf.add, 1, 2), timeout=30) == 3
        server.stop()
        start = time.monotonic()
        with pytest.raises(ConnectionFailed):
            c.call(jf.add, 2, 2)
        with pytest.raises(ConnectionFailed):
            c.map(jf.square, range(10))
        assert time.monotonic() - start < 10
        server.start(appendonly=True)
        jid = c.call(jf.add, 3, 3)
        assert jid == 2  # the failed attempts allocated nothing
        assert c.result(jid, timeout=60) == 6
        assert c.store.unfinished(c.tenant) == []
    finally:
        c.hub.close()
        worker.stop()
        server.stop()
