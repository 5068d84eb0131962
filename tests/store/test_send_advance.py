"""`send_advance` (`store.redis.sent`, the runner's claim-ahead): `advance` sent now and
answered later, on Redis (the memory store has no such step: its runners go step by
step)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.exceptions import ResponseError

from picloud_compat.errors import ConnectionFailed
from picloud_compat.store import keys
from picloud_compat.store.contract import DeferringStore
from picloud_compat.store.memory import MemoryStore
from picloud_compat.store.records import Outcome
from picloud_compat.store.redis import RedisStore
from tests.store.conftest import base_settings, new_tenant
from tests.store.test_contract import chunk, claim, make_sub


@pytest.fixture
def store(store_redis_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(store_redis_url, base_settings(store_redis_url))
    yield s
    s.close()


def submit(store: RedisStore, t: str, n: int) -> list[int]:
    first = store.submit(t, make_sub(n))
    return list(range(first, first + n))


def test_only_redis_defers() -> None:
    assert isinstance(RedisStore.__new__(RedisStore), DeferringStore)
    assert not isinstance(MemoryStore.__new__(MemoryStore), DeferringStore)


def test_the_step_runs_when_sent_and_its_reply_is_read_later(store: RedisStore) -> None:
    t = new_tenant()
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok", max_jobs=1)  # type: ignore[arg-type]
    done = Outcome(jids[0], "tok", "done", result=b"R0", runtime=0.5)
    sent = store.send_advance(chunk(t, jids), [done], 1, 1, 1 << 30, "w1", "wd1", "tok")
    # the script ran before anyone read its reply
    assert store.statuses(t, jids) == ["done", "processing", "queued"]
    nxt = sent.result()
    assert [j.jid for j in nxt.jobs] == [jids[1]] and nxt.next_index == 2
    assert store.results(t, jids[:1]) == [b"R0"]


def test_claiming_nothing_does_not_end_the_chunk(store: RedisStore) -> None:
    t = new_tenant()
    jids = submit(store, t, 2)
    c = chunk(t, jids)
    claim(store, t, jids, token="tok", max_jobs=2, worker="w1")  # type: ignore[arg-type]
    done = Outcome(jids[0], "tok", "done", runtime=0.5)
    # max_jobs 0: record only; the runner still has job 2 to run
    nxt = store.send_advance(c, [done], 2, 0, 1 << 30, "w1", "wd1", "tok").result()
    assert nxt.jobs == [] and nxt.next_index == 2
    assert store.statuses(t, jids) == ["done", "processing"]
    assert [lease for lease in store.leases() if lease.startswith(c.key + "|")]
    assert c.key in store.ledger()


def test_a_refused_step_raises_when_read(store: RedisStore) -> None:
    t = new_tenant()
    jids = submit(store, t, 1)
    claim(store, t, jids, token="tok")  # type: ignore[arg-type]
    store.redis.set(keys.job(t, jids[0]), "not a hash")  # the script fails on it
    done = Outcome(jids[0], "tok", "done", runtime=0.5)
    sent = store.send_advance(chunk(t, jids), [done], 1, 1, 1 << 30, "w1", "wd1", "tok")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        sent.result()
    assert store.redis.ping()  # the connection went back to the pool in working order


def test_an_unloaded_script_is_an_outage_then_loaded(store: RedisStore) -> None:
    t = new_tenant()
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok", max_jobs=1)  # type: ignore[arg-type]
    first = Outcome(jids[0], "tok", "done", runtime=0.5)
    store.send_advance(chunk(t, jids), [first], 1, 1, 1 << 30, "w1", "wd1", "tok").result()
    store.redis.script_flush()  # as after a Redis restart
    done = Outcome(jids[1], "tok", "done", runtime=0.5)
    with pytest.raises(ConnectionFailed):
        store.send_advance(chunk(t, jids), [done], 2, 1, 1 << 30, "w1", "wd1", "tok").result()
    assert store.statuses(t, jids) == ["done", "processing", "queued"]  # nothing ran
    nxt = store.send_advance(chunk(t, jids), [done], 2, 1, 1 << 30, "w1", "wd1", "tok").result()
    assert [j.jid for j in nxt.jobs] == [jids[2]]


def test_each_step_returns_its_connection(store: RedisStore) -> None:
    t = new_tenant()
    jids = submit(store, t, 20)
    claim(store, t, jids, token="tok", max_jobs=1)  # type: ignore[arg-type]
    for i in range(1, 20):
        done = Outcome(jids[i - 1], "tok", "done", runtime=0.5)
        store.send_advance(chunk(t, jids), [done], i, 1, 1 << 30, "w1", "wd1", "tok").result()
    pool = store.redis.connection_pool
    assert len(pool._in_use_connections) == 0  # type: ignore[attr-defined]
    assert len(pool._available_connections) <= 2  # type: ignore[attr-defined]
