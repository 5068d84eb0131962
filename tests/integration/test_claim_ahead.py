"""Claiming ahead on a real prefork worker (`runner.chunk_pass`): while slow jobs follow
each other, a process keeps its next job claimed; a kill of that job before it starts
is vetoed through the state file (`workers.warden`), and the chunk's last job stays
stealable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import jobfuncs as jf
from tests.conftest import private_cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cluster(tmp_path: Path):
    with private_cluster(tmp_path, "ahead") as parts:
        yield parts


def started(ledger: Path) -> list[str]:
    """Tags of the jobs that started, from `jf.logged_sleep`'s ledger."""
    if not ledger.exists():
        return []
    return [line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("start")]


def wait_until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_job_killed_while_claimed_ahead_never_starts(cluster, tmp_path: Path):
    _, _, c = cluster
    ledger = tmp_path / "ledger"
    # 8 jobs on 2 processes: chunks of 4. Job 0 is slow, so after it the process claims
    # job 1 and, ahead, job 2; job 2 is killed while job 1 runs.
    plan = [0.3, 3.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    jids = c.map(jf.logged_sleep, [str(ledger)] * 8, plan, [str(i) for i in range(8)])
    wait_until(lambda: "1" in started(ledger))
    entries = c.info(jids[1:3], ["status", "worker"])
    assert entries[jids[2]]["status"] == "processing", "job 2 was not claimed ahead"
    assert entries[jids[2]]["worker"] == entries[jids[1]]["worker"]

    c.kill(jids[2])
    c.join(jids[1], timeout=30)  # the process running job 1 was not killed with job 2

    c.join([j for j in jids if j != jids[2]], timeout=30)
    assert c.status(jids[2]) == "killed"
    assert "2" not in started(ledger)
    assert sorted(started(ledger)) == ["0", "1", "3", "4", "5", "6", "7"]
    assert c.info(jids[1], ["attempts"])[jids[1]]["attempts"] == 1


def test_the_last_job_of_a_chunk_is_not_claimed_ahead(cluster, tmp_path: Path):
    _, _, c = cluster
    ledger = tmp_path / "ledger"
    # Chunks of 4: this process starts job 2 at ~0.4 s, the other is busy until ~1.2 s.
    plan = [0.2, 0.2, 2.0, 0.2, 0.3, 0.3, 0.3, 0.3]
    jids = c.map(jf.logged_sleep, [str(ledger)] * 8, plan, [str(i) for i in range(8)])
    wait_until(lambda: "2" in started(ledger))
    runner = c.info(jids[2], ["worker"])[jids[2]]["worker"]
    c.join(jids, timeout=30)
    # job 3 was left unclaimed while job 2 ran, so the process that became idle took it
    assert c.info(jids[3], ["worker"])[jids[3]]["worker"] != runner
