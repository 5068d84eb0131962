"""``_cores``: a job holds that many of its worker's slots (every mode has 2 a worker;
``c1`` allows only 1 core, as on PiCloud, so wide jobs run on ``c2``).

Jobs note when they ran; on a 2-slot worker, a 2-core job must overlap nothing else.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(120)


def _span(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_wide_jobs_on_a_two_slot_worker_run_one_after_the_other(cloud) -> None:  # type: ignore[no-untyped-def]
    wide = [cloud.call(_span, 0.8, _cores=2, _type="c2") for _ in range(2)]
    first, second = cloud.result(wide, timeout=60)
    assert not _overlap(first, second), (first, second)


def test_a_wide_job_keeps_one_core_jobs_waiting_and_they_still_run(cloud) -> None:  # type: ignore[no-untyped-def]
    wide = cloud.call(_span, 1.0, _cores=2, _type="c2")
    narrow = cloud.map(_span, [0.3, 0.3], _type="c2")
    spans = cloud.result([wide, *narrow], timeout=60)
    assert not any(_overlap(spans[0], other) for other in spans[1:]), spans
    # without _cores the two one-core jobs share the worker
    again = cloud.result(cloud.map(_span, [0.6, 0.6]), timeout=60)
    assert _overlap(again[0], again[1]), again


def test_more_cores_than_any_worker_has_are_refused_at_submit(cloud) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"_cores=8: the largest worker serving 'c2' has 2"):
        cloud.call(_span, 0, _cores=8, _type="c2")
    with pytest.raises(ValueError, match=r"_cores=4"):
        cloud.map(_span, [0, 0], _cores=4, _type="m1")
    # the limit itself fits
    assert cloud.result(cloud.call(_span, 0, _cores=2, _type="c2"), timeout=60)
