"""The linger after stealing (`runner.stealing`, ``steal_linger``) on a real prefork
worker: a process that ran out of work waits a little for fresh work, and runs a job
submitted meanwhile without its Celery message (the worker's main process is stopped
with SIGSTOP to hold messages back); it goes back to Celery at once when new work is
left to its message; and with the linger off, only the message runs a job."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, private_cluster
from tests.harness import Worker, enable_task_events, messages_held_back

pytestmark = pytest.mark.timeout(120)

LINGER = "1.0"  # long, so what a test does next happens while the process lingers


def task_lines(worker: Worker, tenant: str, jid: int) -> list[str]:
    """Celery's log lines for the task of the chunk starting at `jid`."""
    tag = f"[{tenant}.{jid}.1] succeeded"
    return [line for line in worker.log.read_text().splitlines() if tag in line]


def task_line(worker: Worker, tenant: str, jid: int) -> str:
    deadline = time.monotonic() + 20
    while not task_lines(worker, tenant, jid):
        assert time.monotonic() < deadline, f"the task of job {jid} never ended"
        time.sleep(0.05)
    (line,) = task_lines(worker, tenant, jid)
    return line


def test_a_lingering_process_runs_the_next_call_without_its_message(tmp_path: Path):
    with private_cluster(tmp_path, "linger", PICLOUD_STEAL_LINGER=LINGER) as parts:
        _, worker, c = parts
        first = c.call(jf.add, 1, 1)
        assert c.result(first, timeout=30) == 2  # its process now lingers
        time.sleep(0.2)  # past the steal it makes right after its chunk
        with messages_held_back(worker):
            jid = c.call(jf.add, 2, 3)
            assert c.result(jid, timeout=0.9) == 5
        # the lingering task ran both jobs; the late message found nothing left to run
        assert task_line(worker, c.tenant, first).endswith(": 2")
        assert task_line(worker, c.tenant, jid).endswith(": 0")
        assert c.info(jid, ["attempts"])[jid]["attempts"] == 1


def test_with_the_linger_off_only_the_message_runs_a_job(tmp_path: Path):
    with private_cluster(tmp_path, "nolinger", PICLOUD_STEAL_LINGER="0") as parts:
        _, worker, c = parts
        assert c.result(c.call(jf.add, 1, 1), timeout=30) == 2
        time.sleep(0.2)  # past the steal its process makes right after its chunk
        with messages_held_back(worker):
            jid = c.call(jf.add, 2, 3)
            time.sleep(1.0)
            assert c.status(jid) == "queued"
        assert c.result(jid, timeout=30) == 5


def test_a_process_stops_lingering_for_work_left_to_its_message(tmp_path: Path):
    # one process: while it lingers, nothing else can run the chunks' messages
    with private_cluster(tmp_path, "linger", concurrency=1, PICLOUD_STEAL_LINGER=LINGER) as parts:
        _, _, c = parts
        assert c.result(c.call(jf.add, 1, 1), timeout=30) == 2  # its process now lingers
        submitted = time.time()
        # chunks of 80 jobs: too big to take whole, so their messages run them
        jids = c.map(jf.noop, range(320))
        assert c.result(jids, timeout=60) == list(range(320))
        finished = c.info(jids[0], ["finished"])[jids[0]]["finished"]
        waited = finished.timestamp() - submitted
        assert waited < 0.5, f"the first message waited {waited:.2f} s for the lingering process"


def test_no_linger_while_flower_watches(tmp_path: Path):
    """With task events on, each call's job runs in that call's task, as Flower shows."""
    with private_cluster(tmp_path, "linger", PICLOUD_STEAL_LINGER=LINGER) as parts:
        server, worker, c = parts
        enable_task_events(server.url, SIGNING_KEY, worker)
        assert c.result(c.call(jf.add, 1, 1), timeout=30) == 2
        time.sleep(0.2)  # past the steal its process makes right after its chunk
        with messages_held_back(worker):
            jid = c.call(jf.add, 2, 3)
            time.sleep(0.6)  # within the linger, had it lingered
            assert c.status(jid) == "queued"
        assert c.result(jid, timeout=30) == 5


def test_a_finished_wait_leaves_no_pop_to_take_the_next_token(redis_server):
    """A pop outliving its wait would take the next token while its process is busy
    elsewhere, and the process waiting then would not hear of the work."""
    import threading

    from picloud_compat.runner.wake_ups import WakeUps
    from picloud_compat.settings import Settings
    from picloud_compat.store import keys

    settings = Settings(server_url=redis_server.url)
    queue = f"linger-test-{os.getpid()}"
    busy = WakeUps(settings, [queue], "host:1")
    waiting = WakeUps(settings, [queue], "host:2")
    try:
        assert busy.wait(0.003) is False  # lingered, nothing came: back to other work
        woken: list[bool] = []
        thread = threading.Thread(target=lambda: woken.append(waiting.wait(5.0)))
        thread.start()
        time.sleep(0.2)
        redis_server.client().lpush(keys.wake(queue), 1)
        thread.join(10)
        assert woken == [True]  # the process waiting now got the token
        assert redis_server.client().llen(keys.wake_cancel("host:1")) == 0
    finally:
        busy.close()
        waiting.close()
