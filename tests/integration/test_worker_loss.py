"""Worker loss on the cluster: no job is lost, none stays `processing` forever.

Each test gets its own redis-server and its own prefork workers (started and SIGKILLed
by pid), with short leases so a dead worker is noticed in seconds.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picloud_compat.client.jobs import Client
from picloud_compat.client.session import cluster_client
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker, wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

FAST = {"PICLOUD_LEASE_SECONDS": "3", "PICLOUD_ORPHAN_SECONDS": "2"}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Client]:
    c = cluster_client(Settings(server_url=redis_server.url, signing_key=SIGNING_KEY), "loss")
    yield c
    c.hub.close()
    c.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


def start_worker(workers: list[Worker], redis_server: RedisServer, tmp_path: Path, **kw) -> Worker:
    env = {**FAST, **kw.pop("env", {})}
    w = Worker(redis_server.url, SIGNING_KEY, tmp_path, env=env, **kw)
    w.start()
    workers.append(w)
    return w


def starts(ledger: Path, tag: str) -> list[int]:
    """Pids that started job `tag`, from the execution ledger."""
    if not ledger.exists():
        return []
    return [
        int(line.split()[2])
        for line in ledger.read_text().splitlines()
        if line.startswith(f"start {tag} ")
    ]


def test_lost_pool_process_reruns_a_restartable_job(client, workers, redis_server, tmp_path):
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 2, "a")
    pid = wait_for(lambda: starts(ledger, "a"), 30, "the job to start")[0]
    os.kill(pid, signal.SIGKILL)
    assert client.result(jid, timeout=60) == "a"
    assert len(starts(ledger, "a")) == 2
    assert client.info(jid, "attempts")[jid]["attempts"] == 2


def test_lost_pool_process_fails_a_non_restartable_job(client, workers, redis_server, tmp_path):
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 2, "b", _restartable=False)
    child = client.call(jf.noop, _depends_on=jid)
    pid = wait_for(lambda: starts(ledger, "b"), 30, "the job to start")[0]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(client_exception()) as info:
        client.result(jid, timeout=60)
    assert info.value.status == "error"
    assert "worker lost" in info.value.parameter and "SIGKILL" in info.value.parameter
    client.join(child, timeout=10, ignore_errors=True)
    assert client.status(child) == "stalled"
    time.sleep(1)
    assert len(starts(ledger, "b")) == 1  # never re-run


def test_whole_worker_crash_recovers_running_and_queued_jobs(
    client, workers, redis_server, tmp_path
):
    first = start_worker(workers, redis_server, tmp_path, concurrency=2, name="first")
    ledger = tmp_path / "ledger"
    again = client.call(jf.logged_sleep, str(ledger), 3, "again")
    once = client.call(jf.logged_sleep, str(ledger), 3, "once", _restartable=False)
    queued = client.map(jf.logged_sleep, [str(ledger)] * 3, [0.1] * 3, ["q0", "q1", "q2"])
    wait_for(lambda: starts(ledger, "again") and starts(ledger, "once"), 30, "both jobs to start")
    first.kill()  # SIGKILL of the main process and its pool: Celery records nothing
    assert client.status([again, once]) == ["processing", "processing"]

    start_worker(workers, redis_server, tmp_path, concurrency=2, name="second")
    assert client.result(again, timeout=60) == "again"
    assert client.result(queued, timeout=60) == ["q0", "q1", "q2"]
    with pytest.raises(client_exception(), match="worker lost"):
        client.result(once, timeout=60)
    assert len(starts(ledger, "again")) == 2
    assert len(starts(ledger, "once")) == 1


def test_a_job_that_always_kills_its_worker_is_capped(client, workers, redis_server, tmp_path):
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    jid = client.call(jf.die_hard)
    with pytest.raises(client_exception(), match="worker lost 3 times"):
        client.result(jid, timeout=60)
    assert client.info(jid, "attempts")[jid]["attempts"] == 3
    assert client.result(client.call(jf.add, 1, 2), timeout=30) == 3
    # the dead processes' leases are not kept alive: nothing of that chunk stays leased
    wait_for(
        lambda: (
            not [m for m in redis_server.client().hkeys("pc:leases") if m.startswith(b"loss/1+1")]
        ),
        20,
        "the dead processes' leases to go",
    )


def test_kill_is_durable_while_no_worker_runs(client, workers, redis_server, tmp_path):
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 0.1, "never")
    after = client.call(jf.logged_sleep, str(ledger), 0.1, "after")
    client.kill(jid)
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    assert client.result(after, timeout=30) == "after"
    assert client.status(jid) == "killed"
    assert starts(ledger, "never") == []


def test_long_job_is_not_rerun_by_the_visibility_timeout(client, workers, redis_server, tmp_path):
    start_worker(
        workers, redis_server, tmp_path, concurrency=2, env={"PICLOUD_VISIBILITY_TIMEOUT": "1"}
    )
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 5, "long")
    assert client.result(jid, timeout=60) == "long"
    time.sleep(1)
    assert len(starts(ledger, "long")) == 1


def test_a_message_lost_in_delivery_is_republished(client, workers, redis_server, tmp_path):
    """A worker took the message off the queue and died before starting it."""
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 0.1, "orphan")
    r = redis_server.client()
    assert r.lpop("c1:5") is not None  # the message vanishes, as in a crash mid-delivery
    assert r.llen("c1:5") == 0
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    assert client.result(jid, timeout=60) == "orphan"
    assert len(starts(ledger, "orphan")) == 1


def client_exception():
    from picloud_compat.errors import CloudException

    return CloudException


def test_a_lost_pool_processs_job_leaves_no_process_behind(client, workers, redis_server, tmp_path):
    """The pool process dies (SIGKILL, OOM) while its job runs a subprocess, which its
    clean room can no longer end: the main process ends it by the process group."""
    start_worker(workers, redis_server, tmp_path, concurrency=1)
    record = tmp_path / "pids"
    jid = client.call(_run_a_subprocess, str(record), _restartable=False)
    pids = wait_for(lambda: record.exists() and record.read_text().split(), 30, "the job")
    pool_pid, child_pid = (int(p) for p in pids)
    os.kill(pool_pid, signal.SIGKILL)
    with pytest.raises(client_exception()):
        client.result(jid, timeout=60)
    wait_for(lambda: not _running(child_pid), 10, "the job's subprocess to end")


def _run_a_subprocess(path: str) -> None:
    import os
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "300"])
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.replace(path + ".tmp", path)
    time.sleep(300)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_stalled_main_process_does_not_lose_a_running_job(
    client, workers, redis_server, tmp_path
):
    """The worker's main process stalls past the lease (swapping, SIGSTOP) while its
    pool process runs a job: the job process renews its own chunk's lease, so the job
    is neither run again elsewhere nor failed as lost."""
    stalled = start_worker(workers, redis_server, tmp_path, concurrency=1)
    ledger = tmp_path / "ledger"
    jid = client.call(jf.logged_sleep, str(ledger), 7, "s", _restartable=False)
    wait_for(lambda: starts(ledger, "s"), 30, "the job to start")
    start_worker(workers, redis_server, tmp_path, concurrency=1)  # its reaper watches
    assert stalled.proc is not None
    os.kill(stalled.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(9)  # three lease periods
    finally:
        os.kill(stalled.proc.pid, signal.SIGCONT)
    assert client.result(jid, timeout=60) == "s"
    assert len(starts(ledger, "s")) == 1
