"""`cloud.cron` with a real Celery beat (RedBeat) and worker.

Schedules use croniter's optional sixth (seconds) field so tests fire every few seconds;
everything else is the same path as a 5-field schedule.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import pytest

from picloud_compat.cron.registry import CronNotFound, CronRegistry
from tests.conftest import SIGNING_KEY, make_cluster_client
from tests.harness import Beat, wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def tick():
    return time.time()


def needs_arg(x):
    return x


@pytest.fixture
def registry(worker, cluster_settings, tenant):  # type: ignore[no-untyped-def]
    client = make_cluster_client(cluster_settings, tenant)
    yield CronRegistry(client)
    client.hub.close()


@pytest.fixture
def beats(redis_server, tmp_path):  # type: ignore[no-untyped-def]
    started: list[Beat] = []

    def start(name: str = "beat") -> Beat:
        b = Beat(redis_server.url, SIGNING_KEY, tmp_path, name)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def test_register_validates_and_lists(registry):
    assert registry.register(tick, "every-minute", "*/1 * * * *") == "every-minute"
    info = registry.info("every-minute")
    assert info["schedule"] == "*/1 * * * *" and info["func_name"].endswith("tick")
    assert info["last_run"] is None and info["last_jid"] is None
    assert isinstance(info["created"], datetime) and info["creator_host"]
    assert registry.list() == ["every-minute"]
    with pytest.raises(ValueError, match="already exists"):
        registry.register(tick, "every-minute", "* * * * *")
    with pytest.raises(ValueError, match="5 fields"):
        registry.register(tick, "bad", "* * *")
    with pytest.raises(ValueError, match="not a valid cron"):
        registry.register(tick, "bad", "61 * * * *")
    with pytest.raises(ValueError, match="no required arguments"):
        registry.register(needs_arg, "bad", "* * * * *")
    with pytest.raises(ValueError):
        registry.register(tick, "bad label!", "* * * * *")
    assert registry.register(tick, "names", ["0", "9-17", "*", "jan-mar", "mon-fri"]) == "names"
    registry.deregister("every-minute")
    registry.deregister("names")
    assert registry.list() == []
    with pytest.raises(CronNotFound):
        registry.info("every-minute")


def test_manual_run_is_a_normal_job(registry):
    registry.register(tick, "manual", "0 0 1 1 *")
    jid = registry.run("manual")
    value = registry.client.result(jid, timeout=30)
    assert abs(value - time.time()) < 30
    assert registry.info("manual")["last_jid"] == jid
    registry.deregister("manual")


def test_beat_fires_each_scheduled_time_once_even_with_two_beats(registry, beats):
    beats("beat-a")
    beats("beat-b")  # a second beat by mistake: its lock keeps it standing by
    time.sleep(2)
    registry.register(tick, "fast", "* * * * * */3")  # picked up at run time
    wait_for(lambda: len(_cron_jobs(registry, "fast")) >= 3, 60, "three firings", interval=0.5)
    registry.deregister("fast")
    time.sleep(1)
    jobs = _cron_jobs(registry, "fast")
    client = registry.client
    times = client.result(jobs, timeout=30)
    slots = Counter(int(t) // 3 for t in times)
    assert max(slots.values()) == 1, f"a scheduled time fired twice: {slots}"
    info = registry.info  # deregistered: no more info
    with pytest.raises(CronNotFound):
        info("fast")
    count = len(_cron_jobs(registry, "fast"))
    time.sleep(5)
    assert len(_cron_jobs(registry, "fast")) == count  # stopped firing


def test_crons_survive_a_beat_restart(registry, beats):
    first = beats("first")
    registry.register(tick, "durable", "* * * * * */2")
    wait_for(lambda: _cron_jobs(registry, "durable"), 60, "a first firing", interval=0.5)
    first.stop()
    before = len(_cron_jobs(registry, "durable"))
    beats("second")
    wait_for(
        lambda: len(_cron_jobs(registry, "durable")) >= before + 2,
        60,
        "firings after restart",
        interval=0.5,
    )
    registry.deregister("durable")


def _cron_jobs(registry: CronRegistry, label: str) -> list[int]:
    """Each firing is a normal job, labelled cron:<label>."""
    return registry.client.list_jobs(label=f"cron:{label}")


def test_late_firings_each_serve_their_own_scheduled_time(tmp_path):  # type: ignore[no-untyped-def]
    """Firings that wait in the queue past later scheduled times (no worker serves the
    cron's compute type for a while) still serve one slot each, not the latest one."""
    from picloud_compat.settings import Settings
    from tests.conftest import ensure_redis_server
    from tests.harness import RedisServer, Worker

    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    settings = Settings(server_url=server.url, signing_key=SIGNING_KEY)
    client = make_cluster_client(settings, "t-late")
    beat = Beat(server.url, SIGNING_KEY, tmp_path, "beat-late")
    worker = Worker(server.url, SIGNING_KEY, tmp_path, concurrency=2, queues="c1", name="late")
    try:
        registry = CronRegistry(client)
        beat.start()
        registry.register(tick, "late", "* * * * * */2", _type="c1")
        time.sleep(7)  # about three slots pass while the firings wait: nobody serves c1
        worker.start()
        started = time.monotonic()
        wait_for(lambda: len(_cron_jobs(registry, "late")) >= 3, 60, "the late firings")
        # the queued firings ran at once, each for its own slot (they used to compute
        # "the slot due now" when they ran, all the same one, and all but one were dropped)
        assert time.monotonic() - started < 1.5, "only as the slots came, not at once"
        registry.deregister("late")
        client.join(_cron_jobs(registry, "late"), timeout=30)
    finally:
        worker.stop()
        beat.stop()
        client.close()
        server.stop()
