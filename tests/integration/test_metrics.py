"""Prometheus metrics, scraped over HTTP from ``picloud exporter`` and the gateway.

A private Redis with one real worker (c1, 2 processes), so every figure is known.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from picloud_compat.client import session
from picloud_compat.client.jobs import Client
from picloud_compat.errors import CloudException
from picloud_compat.settings import Settings
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import Gateway, RedisServer, Worker, free_port, wait_for

pytestmark = pytest.mark.timeout(180)


def _square(x: int) -> int:
    return x * x


def _fail() -> None:
    raise ValueError("on purpose")


class Exporter:
    def __init__(self, redis_url: str, cwd: Path) -> None:
        self.port = free_port()
        env = dict(os.environ, PICLOUD_SERVER_URL=redis_url, PICLOUD_SIGNING_KEY=SIGNING_KEY)
        argv = [sys.executable, "-m", "picloud_compat.cli", "exporter", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
        wait_for(self._up, 30, "the exporter")

    def _up(self) -> bool:
        try:
            return httpx.get(self.url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RedisServer, Client, Exporter]]:
    ensure_redis_server()
    tmp = tmp_path_factory.mktemp("metrics")
    server = RedisServer(tmp)
    server.start()
    worker = Worker(server.url, SIGNING_KEY, tmp, concurrency=2, queues="c1")
    client = session.cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "m")
    exporter = None
    try:
        worker.start()
        exporter = Exporter(server.url, tmp)
        yield server, client, exporter
    finally:
        if exporter is not None:
            exporter.stop()
        client.close()
        worker.stop()
        server.stop()


def test_the_exporter_reports_what_the_cluster_did(cluster) -> None:  # type: ignore[no-untyped-def]
    _, client, exporter = cluster
    before = scrape(httpx.get(exporter.url).text)
    jids = client.map(_square, range(10))
    failing = client.call(_fail)
    client.join(jids, timeout=60)
    with pytest.raises(CloudException):
        client.result(failing, timeout=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nobody serves c2: that is the point
        for _ in range(3):
            client.call(_square, 2, _type="c2", _priority=1)
    after = scrape(httpx.get(exporter.url).text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("picloud_jobs_finished_total", status="done") == 10
    assert delta("picloud_jobs_finished_total", status="error") == 1
    assert delta("picloud_job_runtime_seconds_count") == 11
    assert delta("picloud_job_runtime_seconds_bucket", le="0.1") == 11  # tiny jobs
    assert after[("picloud_backlog_chunks", (("priority", "1"), ("type", "c2")))] == 3
    assert after[("picloud_backlog_chunks", (("priority", "5"), ("type", "c1")))] == 0
    assert after[("picloud_processes", (("type", "c1"),))] == 2
    assert after[("picloud_workers", (("type", "c1"),))] == 1
    assert after[("picloud_processes", (("type", "c2"),))] == 0
    wait_for(
        lambda: (
            scrape(httpx.get(exporter.url).text)[("picloud_free_slots", (("type", "c1"),))] == 2
        ),
        10,
        "the idle worker's free slots",
    )


def test_the_gateway_serves_metrics_only_to_its_token(cluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = cluster
    token = "metrics-token-0123456789"
    gateway = Gateway(server.url, SIGNING_KEY, tmp_path, env={"PICLOUD_METRICS_TOKEN": token})
    gateway.start()
    try:
        assert httpx.get(f"{gateway.url}/metrics").status_code == 401
        wrong = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        good = httpx.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200
        assert ("picloud_processes", (("type", "c1"),)) in scrape(good.text)
    finally:
        gateway.stop()
