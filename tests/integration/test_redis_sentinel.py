"""Redis Sentinel: a real failover on loopback while a map runs.

A master, a replica and three sentinels; a worker and a client that know only the
sentinels (``sentinel://.../mymaster/0``). The master is SIGKILLed mid-map; the
sentinels promote the replica, the worker's broker and store and the client follow it,
and every job of the map finishes. Asynchronous replication can lose the master's last
writes (a job's recorded outcome, a claim); the platform recovers them as it recovers
a lost worker (leases lapse, the reaper requeues), which is what this test also
exercises.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from picloud_compat.client import session
from picloud_compat.cron.registry import CronRegistry
from picloud_compat.settings import Settings
from picloud_compat.store.redis import RedisStore
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import Beat, Worker, free_port, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _tick() -> int:
    return 1


def _slow_square(x: int) -> int:
    time.sleep(0.1)
    return x * x


class Node:
    def __init__(self, directory: Path, *args: str) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.pings, 10, f"redis on {self.port}")

    def pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)


class Sentinel:
    def __init__(self, directory: Path, master_port: int) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master_port} 2\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
            "sentinel parallel-syncs mymaster 1\n"
        )
        self.proc = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.pings, 10, f"sentinel on {self.port}")

    def pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def master_port(self) -> int:
        _, port = redis.Redis(port=self.port).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"
        )
        return int(port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[tuple[Node, Node, list[Sentinel], str]]:
    ensure_redis_server()
    master = Node(tmp_path / "master")
    replica = Node(tmp_path / "replica", "--replicaof", "127.0.0.1", str(master.port))
    sentinels: list[Sentinel] = []
    try:
        wait_for(
            lambda: (
                redis.Redis(port=replica.port).info("replication").get("master_link_status") == "up"
            ),
            20,
            "the replica to sync",
        )
        sentinels = [Sentinel(tmp_path / f"s{i}", master.port) for i in range(3)]
        wait_for(
            lambda: all(
                redis.Redis(port=s.port).execute_command("SENTINEL", "REPLICAS", "mymaster")
                for s in sentinels
            ),
            30,
            "the sentinels to see the replica",
        )
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        yield master, replica, sentinels, f"sentinel://{hosts}/mymaster/0"
    finally:
        for s in sentinels:
            s.stop()
        replica.stop()
        master.stop()


def _caught_up(master: Node, replica: Node) -> bool:
    try:
        sent = redis.Redis(port=master.port).info("replication")["master_repl_offset"]
        got = redis.Redis(port=replica.port).info("replication")["slave_repl_offset"]
    except redis.ConnectionError:
        return False
    return bool(got >= sent)


def test_a_failover_mid_map_loses_no_job(sentinel_cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    master, replica, sentinels, url = sentinel_cluster
    worker = Worker(
        url,
        SIGNING_KEY,
        tmp_path,
        concurrency=2,
        queues="c1",
        env={"PICLOUD_LEASE_SECONDS": "4", "PICLOUD_ORPHAN_SECONDS": "6"},
    )
    settings = Settings(server_url=url, signing_key=SIGNING_KEY)
    client = session.cluster_client(settings, "t")
    beat = Beat(url, SIGNING_KEY, tmp_path, "sentinel-beat")
    try:
        worker.start(wait=False)  # the harness's readiness check speaks plain redis://
        store = RedisStore.from_url(url, settings)
        wait_for(lambda: store.live_workers(), 30, "the worker to register through sentinel")
        store.close()
        jids = client.map(_slow_square, range(60))
        wait_for(lambda: client.status(jids).count("done") >= 10, 60, "the map to get going")
        wait_for(lambda: _caught_up(master, replica), 5, "the replica to catch up", interval=0.01)
        master.stop(signal.SIGKILL)
        wait_for(lambda: sentinels[0].master_port() == replica.port, 30, "the promotion")
        assert client.result(jids, timeout=150) == [x * x for x in range(60)]
        # beat, configured from the same URL, fires through the promoted master
        beat.start()
        registry = CronRegistry(client)
        registry.register(_tick, "after-failover", "* * * * * */2")
        wait_for(lambda: client.list_jobs(label="cron:after-failover"), 30, "a firing")
        registry.deregister("after-failover")
    finally:
        beat.stop()
        client.close()
        worker.stop()
