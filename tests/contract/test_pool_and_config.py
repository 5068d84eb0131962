"""`cloud.pool_interface` (multiprocessing.Pool's API) and `cloud.config`, in both modes."""

from __future__ import annotations

import functools
import multiprocessing
import threading

import pytest

from tests import jobfuncs as jf

pytestmark = pytest.mark.timeout(120)


def test_pool_interface(cloud):
    pool = cloud.pool_interface
    assert pool.apply(jf.add, (2, 3)) == 5
    assert pool.apply(jf.add, (2,), {"b": 5}) == 7
    assert pool.map(jf.square, range(6)) == [0, 1, 4, 9, 16, 25]
    assert list(pool.imap(jf.square, [3, 1, 2])) == [9, 1, 4]
    assert sorted(pool.imap_unordered(jf.square, [3, 1, 2])) == [1, 4, 9]

    async_result = pool.map_async(jf.square, [1, 2])
    async_result.wait(30)
    assert async_result.ready() and async_result.successful()
    assert async_result.get(timeout=30) == [1, 4]


def test_imap_unordered_goes_on_after_a_failed_job(cloud):
    """As multiprocessing's: `next()` raises the failed job's exception, and the other
    jobs' results still come (a generator would have ended at the first failure)."""
    fails_on_two = functools.partial(jf.fail_on, bad=2)
    results = cloud.pool_interface.imap_unordered(fails_on_two, [0, 1, 2, 3, 4, 5])
    got: list[object] = []
    while True:
        try:
            got.append(next(results))
        except StopIteration:
            break
        except cloud.CloudException as exc:
            assert "2 is bad" in str(exc)
            got.append("error")
    assert sorted(got, key=str) == [0, 1, 3, 4, 5, "error"]


def test_pool_timeouts_callbacks_and_errors(cloud):
    pool = cloud.pool_interface
    slow = pool.apply_async(jf.sleep, (2, "late"))
    with pytest.raises(multiprocessing.TimeoutError):
        slow.get(timeout=0)  # multiprocessing's meaning: do not wait
    with pytest.raises(multiprocessing.TimeoutError):
        slow.get(timeout=0.3)
    with pytest.raises(cloud.CloudTimeoutError):
        slow.get(timeout=0.3)
    assert slow.ready() is False
    with pytest.raises(ValueError):
        slow.successful()
    assert slow.get(timeout=30) == "late"

    got: list[object] = []
    done = threading.Event()
    pool.apply_async(jf.add, (1, 1), callback=lambda v: (got.append(v), done.set()))
    assert done.wait(30) and got == [2]

    failed = pool.apply_async(jf.fail, ("bad",))
    failed.wait(30)
    assert failed.successful() is False
    with pytest.raises(cloud.CloudException, match="bad"):
        failed.get()


def test_config_attributes(cloud, monkeypatch):
    from picloud_compat import settings

    monkeypatch.setattr(settings, "RUNTIME_OVERRIDES", {})
    assert cloud.config.max_attempts == 3
    cloud.config.max_attempts = "5"  # converted to the setting's type
    assert cloud.config.max_attempts == 5
    with pytest.raises(cloud.CloudException):
        cloud.config.max_attempts = "many"
    with pytest.raises(AttributeError):
        cloud.config.no_such_setting  # noqa: B018
    assert "signing_key" in dir(cloud.config)
    cloud.config.reset()
    assert cloud.config.max_attempts == 3
