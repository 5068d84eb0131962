"""How a runner's claims and outcomes ride out a store that refuses them
(`runner/recording.py`), on a real Redis with no worker: a store that refuses `advance`
(as a peer without it, or a refusal of the outcomes it carries) must cost neither an
outcome nor the chunk's end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from picloud_compat.errors import CloudException
from picloud_compat.runner.recording import Recorder
from picloud_compat.runner.state_file import RunnerIdentity
from picloud_compat.settings import Settings
from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef, Outcome
from picloud_compat.store.redis import RedisStore
from tests.store.conftest import new_tenant
from tests.store.test_contract import make_sub

ME = RunnerIdentity("recording-host:1", "warden-1", None)


class RefusesAdvance(RedisStore):
    """The real store, except that it refuses every `advance`."""

    def advance(self, *args: Any, **kwargs: Any) -> Any:
        raise CloudException("advance refused")


@pytest.fixture
def store(redis_server) -> Iterator[RefusesAdvance]:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + "/10"  # no worker reads this database
    s = RefusesAdvance.from_url(url, Settings(server_url=url, signing_key="k"))
    yield s
    s.close()


def chunk_of(store: RedisStore, n: int) -> ChunkRef:
    t = new_tenant()
    return ChunkRef(t, store.submit(t, make_sub(n)), n)


def test_a_refused_advance_still_records_the_outcomes_and_claims(store) -> None:  # type: ignore[no-untyped-def]
    chunk = chunk_of(store, 3)
    recorder = Recorder(store, ME)
    first, ended = recorder.claim(chunk, [], 0, 1, "tok")
    assert [j.jid for j in first.jobs] == [chunk.first] and not ended
    done = [Outcome(chunk.first, "tok", "done", runtime=0.5)]
    second, ended = recorder.claim(chunk, done, 1, 1, "tok")
    assert [j.jid for j in second.jobs] == [chunk.first + 1] and not ended
    assert store.statuses(chunk.tenant, list(chunk.jids)) == ["done", "processing", "queued"]


def test_a_refused_advance_never_passes_for_the_chunks_end(store) -> None:  # type: ignore[no-untyped-def]
    # the rest of the chunk was taken (and run) by a thief: nothing is left to claim
    chunk = chunk_of(store, 2)
    recorder = Recorder(store, ME)
    recorder.claim(chunk, [], 0, 1, "tok")
    taken = store.claim(chunk, 1, 1, 1 << 20, "thief:2", "warden-2", "thief-tok")
    store.finish(chunk, [Outcome(taken.jobs[0].jid, "thief-tok", "done")], "thief:2", end=True)
    done = [Outcome(chunk.first, "tok", "done")]
    claim, ended = recorder.claim(chunk, done, 1, 1, "tok")
    assert claim.jobs == [] and not ended  # the fallback's claim did not end the chunk ...
    recorder.finish(chunk, [], end=True)  # ... so the runner ends it, as it then does
    assert store.statuses(chunk.tenant, list(chunk.jids)) == ["done", "done"]
    assert not [k for k in store.redis.hkeys(keys.LEASES) if k.decode().startswith(chunk.key)]
    assert store.redis.hget(keys.LEDGER, chunk.key) is None


def test_an_advance_that_claims_nothing_ends_the_chunk(redis_server) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url.rsplit("/", 1)[0] + "/10"
    store = RedisStore.from_url(url, Settings(server_url=url, signing_key="k"))
    try:
        chunk = chunk_of(store, 1)
        recorder = Recorder(store, ME)
        recorder.claim(chunk, [], 0, 1, "tok")
        claim, ended = recorder.claim(chunk, [Outcome(chunk.first, "tok", "done")], 1, 1, "tok")
        assert claim.jobs == [] and ended
        assert store.redis.hget(keys.LEDGER, chunk.key) is None
    finally:
        store.close()
