"""Contract: a client's notice hold (`pop_notices(..., wanted)`), on every store.

A client waiting for many jobs lets the store keep 'done' notices back until as many
as it needs have come, so it wakes once per wait instead of once per job. The hold must
never lose a notice or keep one back past a failure, the pop's timeout, or another
plain pop (another waiter's), which gets held notices too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from picloud_compat.store.records import Notice
from picloud_compat.store.redis import RedisStore
from tests.store.conftest import Checked, base_settings, count_requests, new_tenant
from tests.store.test_contract import CID, claim, finish, notices, submit

pytestmark = pytest.mark.timeout(60)


class Popper:
    """A blocking pop in a thread of its own: what it got, and when it returned."""

    def __init__(self, pop: Callable[[], list[Notice]]) -> None:
        self.got: list[Notice] | None = None
        self.returned_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(pop,), daemon=True)
        self._thread.start()
        time.sleep(0.2)  # the pop is blocking (and its hold armed) by now

    def _run(self, pop: Callable[[], list[Notice]]) -> None:
        self.got = pop()
        self.returned_at = time.monotonic()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> list[Notice]:
        self._thread.join(10)
        assert self.got is not None, "the pop never returned"
        return sorted(self.got, key=lambda n: n.jid)


def finish_one(store: Checked, t: str, jid: int, status: str = "done") -> None:
    """Claim and finish `jid` alone (a chunk of one), as a job process would."""
    claim(store, t, [jid], token=f"tok{jid}")
    finish(store, t, [jid], f"tok{jid}", status, end=True)


def test_a_hold_keeps_done_notices_back_until_the_count(store: Checked, t: str) -> None:
    a, b, c = submit(store, t, 3)
    popper = Popper(lambda: store.pop_notices(t, CID, 4.0, 3))
    finish_one(store, t, a)
    finish_one(store, t, b)
    time.sleep(0.5)
    assert not popper.done(), "the pop woke before the count was reached"
    finish_one(store, t, c)
    ended = time.monotonic()
    assert [n.jid for n in popper.join()] == [a, b, c]
    assert popper.returned_at - ended < 2
    assert notices(store, t) == []  # nothing left behind, held or not


def test_a_failure_ends_a_hold_at_once(store: Checked, t: str) -> None:
    a, b, _ = submit(store, t, 3)
    popper = Popper(lambda: store.pop_notices(t, CID, 4.0, 3))
    finish_one(store, t, a)
    finish_one(store, t, b, "error")
    ended = time.monotonic()
    got = popper.join()
    assert [(n.jid, n.status) for n in got] == [(a, "done"), (b, "error")]
    assert popper.returned_at - ended < 2


def test_a_held_pop_returns_what_came_at_its_timeout(store: Checked, t: str) -> None:
    a, b, _, _ = submit(store, t, 4)
    started = time.monotonic()
    popper = Popper(lambda: store.pop_notices(t, CID, 1.0, 4))
    finish_one(store, t, a)
    finish_one(store, t, b)
    assert [n.jid for n in popper.join()] == [a, b]
    assert 0.9 <= popper.returned_at - started < 4


def test_a_plain_pop_gets_held_notices_at_once(store: Checked, t: str) -> None:
    a, b, _ = submit(store, t, 3)
    popper = Popper(lambda: store.pop_notices(t, CID, 2.0, 3))
    finish_one(store, t, a)
    time.sleep(0.2)
    assert [n.jid for n in store.pop_notices(t, CID, 0)] == [a]  # another waiter's
    later = threading.Timer(0.3, finish_one, (store, t, b))
    later.start()
    started = time.monotonic()
    assert [n.jid for n in store.pop_notices(t, CID, 3.0)] == [b]  # held, yet at once
    assert time.monotonic() - started < 1.5
    later.join()
    assert popper.join() == []  # the hold still stood: it ran out of time, empty


def test_a_plain_pop_elsewhere_gets_held_notices(
    backend: str, make_store: Callable[..., Checked], t: str
) -> None:
    """Another process (a second gateway worker) holds no record of the hold. Only
    Redis is shared between processes: the simulator's one store stands for both."""
    holder = make_store()
    other = make_store() if backend == "redis" else holder
    (a,) = submit(holder, t, 1)
    assert holder.pop_notices(t, CID, 0.3, 5) == []  # armed here, then given up
    finish_one(holder, t, a)  # kept aside: the hold outlives that pop a little
    started = time.monotonic()
    assert [n.jid for n in other.pop_notices(t, CID, 3.0)] == [a]
    assert time.monotonic() - started < 1.5


def test_a_hold_left_armed_hides_nothing_from_a_plain_pop(store: Checked, t: str) -> None:
    (a,) = submit(store, t, 1)
    assert store.pop_notices(t, CID, 0.3, 5) == []  # armed, then the waiter gave up
    finish_one(store, t, a)  # kept back: the hold outlives that pop a little
    assert [n.jid for n in store.pop_notices(t, CID, 3.0)] == [a]


def test_a_hold_is_one_clients(store: Checked, t: str) -> None:
    (a,) = submit(store, t, 1)
    (b,) = submit(store, t, 1, cid="cid-other")
    popper = Popper(lambda: store.pop_notices(t, CID, 2.0, 2))
    finish_one(store, t, b)
    assert [n.jid for n in store.pop_notices(t, "cid-other", 3.0)] == [b]
    assert not popper.done()
    finish_one(store, t, a)
    time.sleep(0.3)
    assert not popper.done()  # one of two
    assert [n.jid for n in store.pop_notices(t, CID, 0)] == [a]  # held, but not from it
    assert popper.join() == []


@pytest.mark.parametrize("wanted", [1, 3])
def test_a_pop_with_under_a_millisecond_left_returns_at_once(
    store: Checked, t: str, wanted: int
) -> None:
    """A wait's last slice can be that short: it must not turn into 0 (block until
    something comes) on the way to the store."""
    started = time.monotonic()
    assert store.pop_notices(t, CID, 0.0002, wanted) == []
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("finished_first", [False, True])
def test_a_held_pop_is_one_round_trip_on_redis(store_redis_url: str, finished_first: bool) -> None:
    """Arming, blocking and sweeping go in one request: each request costs the CPUs
    that run the jobs (the client's and Redis's work both land there)."""
    raw = RedisStore.from_url(store_redis_url, base_settings(store_redis_url))
    store, t = Checked(raw, "redis"), new_tenant()
    try:
        a, b = submit(store, t, 2)
        if finished_first:
            finish_one(store, t, a)
            finish_one(store, t, b)
        sent = count_requests(raw)
        got = raw.pop_notices(t, CID, 0.3, 2)
        assert sorted(n.jid for n in got) == ([a, b] if finished_first else [])
        assert len(sent) == 1
    finally:
        raw.close()


def test_a_held_pop_after_redis_lost_its_scripts(store_redis_url: str) -> None:
    """After a restart (scripts gone; with persistence, an earlier hold and what it kept
    aside are still there) a held pop still releases what was kept aside at once, and
    holds what comes next."""
    raw = RedisStore.from_url(store_redis_url, base_settings(store_redis_url))
    store, t = Checked(raw, "redis"), new_tenant()
    try:
        a, b, c, d = submit(store, t, 4)
        assert raw.pop_notices(t, CID, 0.05, 5) == []  # a hold for 5 that outlives the pop
        finish_one(store, t, a)
        finish_one(store, t, b)  # both kept aside
        raw.redis.script_flush()
        started = time.monotonic()
        assert [n.jid for n in raw.pop_notices(t, CID, 3.0, 2)] == [a, b]
        assert time.monotonic() - started < 1.0
        popper = Popper(lambda: raw.pop_notices(t, CID, 3.0, 2))
        finish_one(store, t, c)
        time.sleep(0.3)
        assert not popper.done()  # held: one of two
        finish_one(store, t, d)
        assert [n.jid for n in popper.join()] == [c, d]
    finally:
        raw.close()
