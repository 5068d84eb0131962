"""Work stealing on a real prefork worker: jobs queued behind a slow job of their chunk
are taken by a process that has nothing else to do, and a thief lost mid-job loses no
job (`runner.stealing`, `store.redis.stealing`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.errors import NoWorkersWarning
from picloud_compat.settings import Settings
from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef, StealMiss
from picloud_compat.store.redis import RedisStore
from tests import jobfuncs as jf
from tests.conftest import private_cluster

pytestmark = pytest.mark.timeout(180)

SLOW = 6.0


@pytest.fixture
def cluster(tmp_path: Path):
    with private_cluster(tmp_path, "thief") as parts:
        yield parts


def chunk_of(client, jid: int) -> ChunkRef:
    """The chunk (message) a job was published in, from the store's ledger of chunks."""
    store: RedisStore = client.store
    for key in store.redis.hkeys(keys.LEDGER):
        chunk = ChunkRef.parse(key.decode())
        if chunk.tenant == client.tenant and chunk.first <= jid < chunk.first + chunk.count:
            return chunk
    raise AssertionError(f"job {jid} is in no published chunk")


def test_jobs_behind_a_slow_job_are_stolen_by_an_idle_process(cluster):
    _, _, c = cluster
    # 40 jobs on 2 processes make chunks of 5; the first job of the first chunk is slow
    jids = c.map(jf.sleep, [SLOW] + [0.01] * 39)
    first_chunk = chunk_of(c, jids[0])
    assert first_chunk.count > 1, "the test needs the slow job to share its chunk"
    behind = jids[1 : first_chunk.count]

    c.join(jids[1:], timeout=60)  # every other job, long before the slow one ends

    assert c.status(jids[0]) == "processing"
    slow_worker = c.info(jids[0], ["worker"])[jids[0]]["worker"]
    for entry in c.info(behind, ["worker", "attempts"]).values():
        assert entry["worker"] != slow_worker  # run by the other process, not after it
        assert entry["attempts"] == 1
    c.join(jids[0], timeout=30)
    assert c.result(jids) == [None] * 40


def test_a_thief_killed_mid_job_loses_nothing(cluster, tmp_path: Path):
    _, worker, c = cluster
    marker = tmp_path / "died-once"
    # chunks of 5: job 0 holds its process; a thief takes the rest of the chunk, and
    # job 3 kills the thief the first time it runs
    args = [("sleep", SLOW)] + [("noop", 0)] * 39
    args[3] = ("die_once", str(marker))
    jids = c.map(jf.stealing_victim, *zip(*args, strict=True))
    c.join(jids, timeout=90)
    assert marker.exists(), "the job that kills its process never ran"
    statuses = c.status(jids)
    assert statuses == ["done"] * 40
    info = c.info([jids[0], jids[3]], ["attempts", "finished"])
    assert info[jids[3]]["attempts"] == 2
    # run (twice) while the slow job held its process: by a thief, then its replacement
    assert (info[jids[0]]["finished"] - info[jids[3]]["finished"]).total_seconds() > 2
    assert worker.proc is not None and worker.proc.poll() is None  # a new process replaced it


def test_chunks_of_an_environment_are_never_stolen(cluster):
    server, _, c = cluster
    store = RedisStore.from_url(server.url, Settings(server_url=server.url))
    try:
        EnvRegistry(c.store, c.tenant).create("tools", ["inflection==0.5.1"])
        # c2 has no worker, so the jobs stay queued; a thief would run them in a pool
        # process, without the environment's packages
        with pytest.warns(NoWorkersWarning):
            jids = c.map(jf.noop, [1, 2, 3], _env="tools", _type="c2")
        assert set(c.status(jids)) == {"queued"}
        found = store.steal(["c2"], "host:1", "host:1", "token", 1 << 20)
        assert found is StealMiss.PENDING  # its executors' message will run them
        assert set(c.status(jids)) == {"queued"}
    finally:
        store.close()
