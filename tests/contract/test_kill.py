"""Killing running jobs really stops their processes, in both modes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests import jobfuncs as jf
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(120)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _started(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize(
    ("kind", "children"),
    [("spin", 0), ("c_loop", 0), ("sleep", 0), ("ignore_term", 0), ("spin", 3)],
    ids=["python-loop", "c-call", "sleep", "ignores-sigterm", "with-grandchildren"],
)
def test_kill_stops_the_running_process(cloud, tmp_path, kind, children):
    marker = tmp_path / "pids"
    submitted = time.monotonic()
    jid = cloud.call(jf.run_until_killed, str(marker), kind, children)
    dependent = cloud.call(jf.noop, _depends_on=jid)
    pids = wait_for(lambda: _started(marker), 30, "the job to start")
    assert cloud.status(jid) == "processing"

    killed_at = time.monotonic()
    cloud.kill(jid)
    assert cloud.status([jid, dependent]) == ["killed", "stalled"]
    wait_for(lambda: all(_gone(p) for p in pids), 5, "the job's processes to die")
    assert time.monotonic() - killed_at < 3
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(jid)
    assert info.value.status == "killed"
    ran = cloud.info(jid, ["runtime"])[jid]["runtime"]
    assert 0 < ran < killed_at - submitted + 0.5  # it ran until the kill: not unknown
    # the pool replaced the process: new jobs still run
    assert cloud.result(cloud.call(jf.add, 2, 2), timeout=30) == 4


def test_kill_one_job_of_a_chunk_spares_its_batch_mates(cloud, tmp_path):
    ledger = tmp_path / "ledger"
    jids = cloud.map(jf.logged_sleep, [str(ledger)] * 16, [0.4] * 16, range(16))
    victim = jids[0]
    wait_for(lambda: ledger.exists() and "start 0 " in ledger.read_text(), 30, "job 0 to start")
    cloud.kill(victim)
    cloud.join(jids[1:], timeout=60)
    assert cloud.status(victim) == "killed"
    assert cloud.result(jids[1:]) == list(range(1, 16))
    assert "end 0" not in ledger.read_text()


def test_max_runtime_kills_the_job(cloud, tmp_path):
    marker = tmp_path / "pids"
    jid = cloud.call(jf.run_until_killed, str(marker), "sleep", _max_runtime=0.02)  # 1.2 s
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(jid, timeout=30)
    assert info.value.status == "killed"
    assert "_max_runtime" in info.value.parameter
    pids = _started(marker)
    wait_for(lambda: all(_gone(p) for p in pids), 5, "the job's process to die")


def test_output_is_readable_while_the_job_runs(cloud):
    jid = cloud.call(jf.chatty, 30, 0.1)
    text = wait_for(
        lambda: (
            (cloud.info(jid, "stdout")[jid]["stdout"] or "")
            if cloud.status(jid) == "processing"
            else ""
        ),
        30,
        "live output",
    )
    assert text.startswith("line 0\n")
    assert cloud.status(jid) == "processing"
    assert cloud.result(jid, timeout=30) == 30
    assert cloud.info(jid, "stdout")[jid]["stdout"] == "".join(f"line {i}\n" for i in range(30))


def test_kill_without_jids_kills_every_unfinished_job(cloud, tmp_path):
    marker = tmp_path / "pids"
    running = cloud.call(jf.run_until_killed, str(marker), "sleep")
    queued = [cloud.call(jf.sleep, 10) for _ in range(3)]
    pids = wait_for(lambda: _started(marker), 30, "the job to start")
    cloud.kill()
    assert cloud.status([running, *queued]) == ["killed"] * 4
    wait_for(lambda: all(_gone(p) for p in pids), 5, "the job's process to die")
    assert os.path.exists(marker)


def test_a_killed_job_claimed_in_a_batch_never_starts(cloud, tmp_path):
    """Jobs are claimed in batches; one killed after being claimed must still not run."""
    marker = tmp_path / "ran"
    # 96 jobs on 2 processes make chunks of 48 (N / concurrency): the first chunk's
    # jobs are claimed in growing batches (1, 4, 16: 5-20 holds the slow job 8 and 10).
    seconds = [0.0] * 8 + [1.5] + [0.0] * 87
    jids = cloud.map(jf.logged_sleep, [str(marker)] * 96, seconds, range(96))
    wait_for(lambda: marker.exists() and "start 8 " in marker.read_text(), 30, "the slow job")
    victim = jids[10]
    cloud.kill(victim)
    cloud.join([j for j in jids if j != victim], timeout=60)
    assert "start 10 " not in marker.read_text()
    assert cloud.status(victim) == "killed"


def test_a_quick_result_does_not_wait_for_a_slow_batch_mate(cloud):
    jids = cloud.map(jf.sleep, [0, 0, 0, 0, 0, 3, 0], range(7))
    start = time.monotonic()
    assert cloud.result(jids[0], timeout=30) == 0
    assert time.monotonic() - start < 2.5
    assert cloud.result(jids, timeout=30) == list(range(7))
