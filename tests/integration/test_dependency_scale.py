"""The dependency resolver at scale: a 1,000-deep chain and a 10,000-parent fan-in."""

from __future__ import annotations

import time

import pytest

from tests import jobfuncs as jf

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_thousand_deep_chain_runs_in_order(cloud, client):
    jids = [cloud.call(jf.noop, 0)]
    for i in range(1, 1000):
        jids.append(cloud.call(jf.noop, i, _depends_on=jids[-1]))
    assert cloud.result(jids[-1], timeout=240) == 999
    info = cloud.info(jids, ["status", "created", "finished"])
    finished = [info[j]["finished"] for j in jids]
    assert all(info[j]["status"] == "done" for j in jids)
    assert finished == sorted(finished)


def test_error_in_a_long_chain_stalls_the_rest(cloud):
    gate = cloud.call(jf.sleep, 0.5)
    jids = [cloud.call(jf.fail, _depends_on=gate)]
    for _ in range(499):
        jids.append(cloud.call(jf.noop, _depends_on=jids[-1]))
    start = time.monotonic()
    cloud.join(jids, timeout=60, ignore_errors=True)
    assert time.monotonic() - start < 10
    statuses = cloud.status(jids)
    assert statuses[0] == "error" and set(statuses[1:]) == {"stalled"}


def test_fan_in_of_ten_thousand_parents(cloud, tmp_path):
    ledger = tmp_path / "child"
    parents = cloud.map(jf.noop, range(10_000))
    child = cloud.call(jf.append_line, str(ledger), "child", _depends_on=parents)
    assert cloud.result(child, timeout=240) == "child"
    assert ledger.read_text() == "child\n"  # started exactly once
    assert set(cloud.status(parents)) == {"done"}


def test_fan_in_with_one_failing_parent_stalls_the_child(cloud, tmp_path):
    ledger = tmp_path / "child"
    parents = cloud.map(jf.noop, range(2_000))
    bad = cloud.call(jf.fail)
    child = cloud.call(jf.append_line, str(ledger), "child", _depends_on=[*parents, bad])
    cloud.join([child], timeout=120, ignore_errors=True)
    assert cloud.status(child) == "stalled"
    assert not ledger.exists()
