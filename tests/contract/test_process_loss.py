"""The process running a job dies (OOM killer, segfault): in both modes, restartable jobs
re-run and non-restartable jobs end `error`; nothing stays `processing`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests import jobfuncs as jf
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(120)


def _starts(ledger: Path, tag: str) -> list[int]:
    if not ledger.exists():
        return []
    lines = ledger.read_text().splitlines()
    return [int(x.split()[2]) for x in lines if x.startswith(f"start {tag} ")]


def test_restartable_job_reruns(cloud, tmp_path):
    ledger = tmp_path / "ledger"
    jid = cloud.call(jf.logged_sleep, str(ledger), 1, "r")
    os.kill(wait_for(lambda: _starts(ledger, "r"), 30, "start")[0], signal.SIGKILL)
    assert cloud.result(jid, timeout=60) == "r"
    assert len(_starts(ledger, "r")) == 2
    assert cloud.info(jid, "attempts")[jid]["attempts"] == 2


def test_non_restartable_job_errors(cloud, tmp_path):
    ledger = tmp_path / "ledger"
    jid = cloud.call(jf.logged_sleep, str(ledger), 1, "n", _restartable=False)
    os.kill(wait_for(lambda: _starts(ledger, "n"), 30, "start")[0], signal.SIGKILL)
    with pytest.raises(cloud.CloudException, match="worker lost") as info:
        cloud.result(jid, timeout=60)
    assert info.value.status == "error"
    assert len(_starts(ledger, "n")) == 1
