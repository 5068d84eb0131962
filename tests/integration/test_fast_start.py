"""The fast start (`workers.pool`, `runner.fast_start`) on a real prefork worker: an idle
pool process takes a fresh job while its Celery message has not reached a pool process
(the worker's main process is stopped with SIGSTOP to hold the message back), the late
message then runs nothing, and such a job can be killed, or lose its process, like any
other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from picloud_compat.client.jobs import Client
from picloud_compat.config.compute_types import queue_keys
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, private_cluster
from tests.harness import RedisServer, Worker, enable_task_events, messages_held_back

pytestmark = pytest.mark.timeout(180)


@contextmanager
def warm_cluster(tmp_path: Path, **env: str) -> Iterator[tuple[RedisServer, Worker, Client]]:
    """A private cluster whose every pool process has run a job and whose queue is empty."""
    with private_cluster(tmp_path, "fast", **env) as (server, worker, client):
        client.result(client.map(jf.noop, range(4)), timeout=60)
        drained(server)
        yield server, worker, client


def drained(server: RedisServer) -> None:
    """Wait until the worker has taken every message (late ones run nothing)."""
    deadline = time.monotonic() + 20
    while waiting_messages(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_messages(server) == 0


@pytest.fixture
def cluster(tmp_path: Path):
    with warm_cluster(tmp_path, PICLOUD_FAST_START="1") as parts:
        yield parts


def waiting_messages(server: RedisServer) -> int:
    redis = server.client()
    return sum(redis.llen(key) for key in queue_keys("c1"))


def test_a_fresh_job_runs_before_its_message_arrives(cluster):
    _, worker, c = cluster
    with messages_held_back(worker):
        jid = c.call(jf.add, 2, 3)
        assert c.result(jid, timeout=20) == 5  # taken by an idle pool process
    # the late message still becomes a Celery task, which finds nothing left to run
    done = f"[{c.tenant}.{jid}.1] succeeded"
    deadline = time.monotonic() + 20
    while done not in worker.log.read_text():
        assert time.monotonic() < deadline, "the chunk's message never ran"
        time.sleep(0.1)
    (line,) = [ln for ln in worker.log.read_text().splitlines() if done in ln]
    assert line.endswith(": 0")  # jobs it ran
    assert c.info(jid, ["attempts", "status"])[jid] == {"attempts": 1, "status": "done"}
    assert c.result(jid) == 5


def test_a_job_taken_while_idle_can_be_killed(cluster):
    _, worker, c = cluster
    with messages_held_back(worker):
        jid = c.call(jf.sleep, 120)
        deadline = time.monotonic() + 20
        while c.status(jid) != "processing":
            assert time.monotonic() < deadline, "no idle process took the job"
            time.sleep(0.05)
    c.kill(jid)  # the worker's warden (its main process, running again) kills it
    deadline = time.monotonic() + 20
    while c.status(jid) != "killed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert c.result(c.call(jf.add, 1, 1), timeout=30) == 2  # the pool carries on


def test_a_job_whose_idle_process_dies_runs_again_before_its_lease_lapses(cluster, tmp_path: Path):
    _, worker, c = cluster
    marker = tmp_path / "died"
    with messages_held_back(worker):
        jid = c.call(jf.stealing_victim, "die_once", str(marker))
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, "no idle process took the job"
            time.sleep(0.05)
    # recovered when the warden sees the process gone (after Celery's own chance, 4 s),
    # not when its lease lapses (30 s)
    c.join(jid, timeout=15)
    assert c.info(jid, ["attempts"])[jid]["attempts"] == 2


def test_the_fast_start_is_off_by_default(tmp_path: Path):
    with warm_cluster(tmp_path) as (_, worker, c):
        with messages_held_back(worker):
            jid = c.call(jf.add, 2, 3)
            time.sleep(2)
            assert c.status(jid) == "queued"  # only its message starts it
        assert c.result(jid, timeout=30) == 5


def test_the_fast_start_pauses_while_flower_watches(cluster):
    """With task events on (Flower switches them on remotely), every job runs in its own
    Celery task, which is what Flower shows."""
    server, worker, c = cluster
    enable_task_events(server.url, SIGNING_KEY, worker)
    with messages_held_back(worker):
        jid = c.call(jf.add, 2, 3)
        time.sleep(2)
        assert c.status(jid) == "queued"
    assert c.result(jid, timeout=30) == 5
