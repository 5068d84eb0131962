"""Which jobs a thief takes (``lua/steal.lua``), on a real Redis with no worker: chunks
are published by a real client, and claims by hand put them in each state a thief can
find them in."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import msgpack
import pytest

from picloud_compat.client.jobs import Client
from picloud_compat.client.session import cluster_client
from picloud_compat.errors import NoWorkersWarning
from picloud_compat.settings import Settings
from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef, Outcome, Settlement, StealMiss
from picloud_compat.store.redis import RedisStore
from picloud_compat.store.redis.stealing import WHOLE_CHUNK
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY

THIEF = "thief-host:1"
OWNER = "owner-host:2"


@pytest.fixture
def client(redis_server) -> Iterator[Client]:
    url = redis_server.url.rsplit("/", 1)[0] + "/9"  # no worker reads this database
    c = cluster_client(Settings(server_url=url, signing_key=SIGNING_KEY), "steal")
    store: RedisStore = c.store  # type: ignore[assignment]
    store.redis.flushdb()
    try:
        yield c
    finally:
        store.redis.flushdb()
        c.hub.close()


def published(c: Client, n: int, **options) -> list[ChunkRef]:
    """Submit `n` no-op jobs on c2 (no worker serves it); their chunks, in jid order
    (2 of them: n/2 jobs each, a chunk per process as for 2 processes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoWorkersWarning)
        jids = c.map(jf.noop, range(n), _type="c2", **options)
    store: RedisStore = c.store  # type: ignore[assignment]
    chunks = [ChunkRef.parse(k.decode()) for k in store.redis.hkeys(keys.LEDGER)]
    return sorted((ch for ch in chunks if jids[0] <= ch.first <= jids[-1]), key=lambda ch: ch.first)


def only(c: Client, chunk: ChunkRef) -> ChunkRef:
    """Withdraw every offer but `chunk`'s (a map makes 2 chunks, taken oldest first)."""
    store: RedisStore = c.store  # type: ignore[assignment]
    others = [m for m in store.redis.zrange(keys.stealable("c2"), 0, -1) if m != chunk.key.encode()]
    if others:
        store.redis.zrem(keys.stealable("c2"), *others)
    return chunk


def claim(c: Client, chunk: ChunkRef, start: int, count: int, worker: str = OWNER) -> None:
    """`worker` claims `count` queued jobs of `chunk` from index `start`."""
    taken = c.store.claim(chunk, start, count, 1 << 30, worker, worker, "tok")
    assert len(taken.jobs) == count


def steal(c: Client) -> tuple[ChunkRef, int] | StealMiss:
    """The chunk a thief serving c2 takes from, and the index of the job it claimed;
    else why it took nothing."""
    store: RedisStore = c.store  # type: ignore[assignment]
    found = store.steal(["c2"], THIEF, THIEF, "thief-token", 1 << 20)
    if isinstance(found, StealMiss):
        return found
    chunk, taken = found
    assert len(taken.jobs) == 1
    return chunk, taken.jobs[0].jid - chunk.first


def test_a_small_unstarted_chunk_is_taken_whole(client):
    chunk = published(client, 4)[0]
    assert chunk.count == 2
    assert steal(client) == (chunk, 0)  # the oldest offer
    assert client.info(chunk.first, ["worker"])[chunk.first]["worker"] == THIEF


def test_a_chunk_of_the_same_map_nobody_started_is_taken_before_a_split(client):
    first, second = published(client, 8)  # one request: offered at the same moment
    claim(client, first, 0, 1)  # a process runs the first chunk's job 0; 1..3 wait
    assert steal(client) == (second, 0)  # the woken thief takes the second chunk whole
    assert steal(client) == (first, 2)  # then, with both started, a back half: 2..3


def test_a_big_unstarted_chunk_is_left_to_its_message(client):
    chunks = published(client, 2 * (WHOLE_CHUNK + 8))
    assert all(ch.count > WHOLE_CHUNK for ch in chunks)
    assert steal(client) is StealMiss.PENDING  # their messages will come: do not linger
    claim(client, chunks[1], 0, 1)  # started: now its back half may be taken
    assert steal(client) == (chunks[1], 1 + (chunks[1].count - 1) // 2)


def test_the_back_half_of_a_chunk_in_progress(client):
    chunk = only(client, published(client, 18)[1])
    assert chunk.count == 9
    claim(client, chunk, 0, 1)  # the owner runs job 0; 1..8 wait behind it
    assert steal(client) == (chunk, 5)  # takes 5..8
    client.store.claim(chunk, 6, 3, 1 << 30, THIEF, THIEF, "thief-token")  # 6..8 too
    assert steal(client) == (chunk, 3)  # of 1..4 left: 3..4
    client.store.claim(chunk, 4, 1, 1 << 30, THIEF, THIEF, "thief-token")
    assert steal(client) == (chunk, 2)  # of 1..2 left
    assert steal(client) == (chunk, 1)
    assert steal(client) is StealMiss.QUIET  # nothing queued: the offer is gone
    store: RedisStore = client.store  # type: ignore[assignment]
    assert store.redis.zcard(keys.stealable("c2")) == 0


def test_a_queued_run_in_the_middle_of_a_big_chunk_is_found(client):
    chunk = only(client, published(client, 200)[1])
    assert chunk.count == 100
    claim(client, chunk, 0, 10)  # the owner's front
    tail = chunk.count - 7
    claim(client, chunk, tail, 7, worker=THIEF)  # an earlier thief's back
    found = steal(client)
    assert not isinstance(found, StealMiss) and found[0] == chunk
    # the run 10..tail-1 is queued: its back half is taken
    assert found[1] == 10 + (tail - 10) // 2


def test_higher_priorities_are_taken_first(client):
    (low,) = published(client, 1, _priority=9)
    (high,) = published(client, 1, _priority=1)
    assert steal(client) == (high, 0)
    assert steal(client) == (low, 0)


def test_nothing_offered_is_quiet(client):
    assert steal(client) is StealMiss.QUIET


def test_offers_beyond_those_a_steal_looks_at_are_pending(client):
    running = [ch for _ in range(4) for ch in published(client, 2 * 20)]  # 8 chunks ...
    assert len(running) == 8  # ... whose every job is running ...
    for chunk in running:
        claim(client, chunk, 0, chunk.count)
    assert steal(client) is StealMiss.PENDING  # ... the oldest 8 offers: maybe more behind
    waiting = [ch for _ in range(4) for ch in published(client, 2 * 40)]  # ... and 8 newer
    assert len(waiting) == 8  # ones too big to take whole
    assert all(ch.count > WHOLE_CHUNK for ch in waiting)
    # whose messages will run them: a thief that lingered for new work would hold them up
    assert steal(client) is StealMiss.PENDING


def test_an_offer_leaves_the_set_when_its_chunk_finishes(client):
    (chunk,) = published(client, 1)
    store: RedisStore = client.store  # type: ignore[assignment]
    assert store.redis.zscore(keys.stealable("c2"), chunk.key) is not None
    claim(client, chunk, 0, 1)
    outcome = Outcome(jid=chunk.first, token="tok", status="done")
    store.finish(chunk, [outcome], OWNER, end=True, ran_all=True)
    assert store.redis.zscore(keys.stealable("c2"), chunk.key) is None
    assert steal(client) is StealMiss.QUIET  # and a thief finds nothing, cheaply


def test_a_steal_settles_the_thiefs_previous_chunk(client):
    first, second = published(client, 16)[:2]
    store: RedisStore = client.store  # type: ignore[assignment]
    assert steal(client) == (first, 0)  # taken whole: the thief claims the rest itself
    claim(client, first, 1, 1, worker=THIEF)
    done = [
        Outcome(jid=jid, token=tok, status="done")
        for jid, tok in [(first.first, "thief-token"), (first.first + 1, "tok")]
    ]
    settle = Settlement(first, tuple(done), ran_all=True)
    found = store.steal(["c2"], THIEF, THIEF, "thief-token-2", 1 << 20, settle)
    assert not isinstance(found, StealMiss) and found[0] == second
    jids = [first.first, first.first + 1]
    assert client.status(jids) == ["done", "done"]
    # the first chunk ended in the same round trip: no lease, ledger entry or offer left
    assert not [k for k in store.redis.hkeys(keys.LEASES) if k.decode().startswith(first.key)]
    assert store.redis.hget(keys.LEDGER, first.key) is None
    assert store.redis.zscore(keys.stealable("c2"), first.key) is None


def test_a_steal_that_finds_nothing_still_settles(client):
    (chunk,) = published(client, 1)
    claim(client, chunk, 0, 1, worker=THIEF)
    only(client, chunk)
    store: RedisStore = client.store  # type: ignore[assignment]
    outcome = Outcome(jid=chunk.first, token="tok", status="error", exception="boom")
    settle = Settlement(chunk, (outcome,), ran_all=True)
    assert store.steal(["c2"], THIEF, THIEF, "t2", 1 << 20, settle) is StealMiss.QUIET
    assert client.status(chunk.first) == "error"
    assert store.redis.hget(keys.LEDGER, chunk.key) is None


def test_a_steal_across_tenants_sends_each_tenant_its_own_notices(client):
    """One steal may notify two tenants: it settles the thief's chunk of one, then claims
    (here: fails, the key being deactivated) a chunk of another. A client id is the
    client's own choice, so two tenants' clients may share one; each tenant's notices
    must still go to that tenant's list."""
    store: RedisStore = client.store  # type: ignore[assignment]
    (mine,) = published(client, 1)
    claim(client, mine, 0, 1, worker=THIEF)
    other_key = store.create_account("hash", "", 1.0)
    other = cluster_client(client.settings, other_key)
    other.cid = client.cid  # the same client id under another tenant
    try:
        (theirs,) = [ch for ch in published(other, 1) if ch.tenant == other_key]
        assert store.set_account_active(other_key, False)
        done = Outcome(jid=mine.first, token="tok", status="done")
        store.steal(["c2"], THIEF, THIEF, "t2", 1 << 20, Settlement(mine, (done,), True))

        def noticed(tenant: str) -> list[tuple[int, str]]:
            out = []
            for packed in store.redis.lrange(keys.notices(tenant, client.cid), 0, -1):
                flat = msgpack.unpackb(packed)
                out += [(flat[i], flat[i + 1]) for i in range(0, len(flat), 3)]
            return out

        assert noticed("steal") == [(mine.first, "done")]
        assert noticed(other_key) == [(theirs.first, "error")]
        assert other.status(theirs.first) == "error"
    finally:
        other.hub.close()
