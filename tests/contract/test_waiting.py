"""Waiting on many jobs: one wake-up per wait, never a late result (every mode).

A quiet `result` of a map lets the store hold completion notices back until all have
come (or one failed), so the client is not woken once per job. Another thread that
starts waiting meanwhile must still hear of its jobs at once: it pops beside the
holding one, and plain pops get held notices too.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from picloud_compat.client.notices import HOLD_SLICE
from tests import jobfuncs as jf

pytestmark = pytest.mark.timeout(120)


def spy_pops(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int, int]]:
    """(timeout, wanted, notices got) of each pop the client's hub makes from now on,
    appended as each returns (a spy on the real store)."""
    pops: list[tuple[float, int, int]] = []
    real = client.hub.store.pop_notices

    def pop(t: str, cid: str, timeout: float, wanted: int = 1) -> Any:
        got = real(t, cid, timeout, wanted)
        pops.append((timeout, wanted, len(got)))
        return got

    monkeypatch.setattr(client.hub.store, "pop_notices", pop)
    return pops


def test_a_quiet_wait_on_a_map_wakes_once_not_per_job(cloud, client, monkeypatch):
    cloud.result(cloud.call(jf.noop), timeout=30)  # processes warm
    delays = [0.03 * i for i in range(10)]  # finishing one after another, ~0.03 s apart
    jids = cloud.map(jf.sleep, delays, list(range(10)))
    pops = spy_pops(client, monkeypatch)
    started = time.monotonic()
    assert cloud.result(jids, timeout=60) == list(range(10))
    slices = (time.monotonic() - started) / HOLD_SLICE  # each may end with what came
    woke_with_news = [n for _, _, n in pops if n]
    assert len(woke_with_news) <= 2 + slices, f"woken {len(woke_with_news)} times: {pops}"


def test_a_failure_ends_a_quiet_wait_at_once(cloud):
    cloud.result(cloud.call(jf.noop), timeout=30)
    jids = [cloud.call(jf.sleep, 5, "slow"), cloud.call(jf.fail, "boom")]
    started = time.monotonic()
    with pytest.raises(cloud.CloudException, match="boom"):
        cloud.result(jids, timeout=60)
    assert time.monotonic() - started < 4  # not after the slow job
    cloud.kill(jids[0])


def test_a_second_waiter_is_not_held_back_by_a_quiet_wait(cloud, client, monkeypatch):
    cloud.result(cloud.call(jf.noop), timeout=30)
    first = cloud.call(jf.sleep, 4, "slow")
    slow = [first, cloud.call(jf.noop, _depends_on=first)]  # one process stays free
    pops = spy_pops(client, monkeypatch)
    waiting = threading.Thread(target=lambda: cloud.result(slow, timeout=60))
    waiting.start()
    try:
        time.sleep(0.2)  # the thread above is in a pop that holds notices back
        quick = cloud.call(jf.sleep, 0.2, "quick")  # a notice the hold would keep back
        assert cloud.result(quick, timeout=30) == "quick"
        heard = time.time()
    finally:
        waiting.join(60)
    assert any(wanted == 1 and got for _, wanted, got in pops), f"no plain pop: {pops}"
    finished = cloud.info(quick, ["finished"])[quick]["finished"].timestamp()
    late = heard - finished  # the job's end as the worker recorded it, on this host
    assert late < 0.15, f"the second waiter heard of its finished job {late:.2f} s late"
