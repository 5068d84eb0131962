"""Flower shows each job under the user's function name and label, not a generic task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, make_cluster_client
from tests.harness import free_port, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_flower_lists_jobs_by_function_and_label(
    worker, redis_server, cluster_settings, tmp_path: Path
):
    port = free_port()
    env = dict(
        os.environ,
        PICLOUD_SERVER_URL=redis_server.url,
        PICLOUD_SIGNING_KEY=SIGNING_KEY,
        FLOWER_UNAUTHENTICATED_API="true",
    )
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "picloud_compat.tasks.app",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = make_cluster_client(cluster_settings, "flower")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(f"{base}/api/workers"), 60, "flower to answer")
        # Workers send no events until Flower switches them on (it does every 5 s).
        jids: list[int] = []

        def shown() -> dict | None:
            jids.append(client.call(jf.add, 1, 2, _label="nightly"))
            client.result(jids[-1], timeout=30)
            tasks = httpx.get(f"{base}/api/tasks", timeout=2).json()
            for task in tasks.values():
                if (
                    task.get("name") == "tests.jobfuncs.add [nightly]"
                    and task.get("state") == "SUCCESS"
                ):
                    return task
            return None

        task = wait_for(shown, 30, "the job to show in flower", interval=0.5)
        assert task["args"] in {f"(jid {jid})" for jid in jids}

        # A chunk whose jobs failed shows as failed, naming them and their exceptions
        # (it used to be a green SUCCESS).
        failing = client.map(jf.fail_on, [1, 2, 3], [2, 2, 2], _label="checks")
        client.join(failing, timeout=30, ignore_errors=True)

        def failed() -> dict | None:
            tasks = httpx.get(f"{base}/api/tasks", timeout=2).json()
            for task in tasks.values():
                name = task.get("name") or ""  # "... [checks] x2" for a chunk of two
                if "[checks]" in name and task.get("state") == "FAILURE":
                    return task
            return None

        task = wait_for(failed, 30, "the failed chunk to show in flower", interval=0.5)
        assert f"job {failing[1]}" in task["exception"]
        assert "ValueError" in task["exception"]

        # A killed job's chunk shows as revoked (Celery's word for a terminated task).
        victim = client.call(jf.sleep, 30, "never", _label="victim")
        wait_for(lambda: client.status(victim) == "processing", 30, "the victim to run")
        client.kill(victim)

        def revoked() -> dict | None:
            tasks = httpx.get(f"{base}/api/tasks", timeout=2).json()
            for task in tasks.values():
                if (task.get("name") or "").endswith("[victim]") and task.get("state") == "REVOKED":
                    return task
            return None

        wait_for(revoked, 30, "the killed job's chunk to show as revoked", interval=0.5)
    finally:
        client.hub.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()
