"""The store contract (`picloud_compat.store.contract`), one body of tests for both stores.

Every test runs against `MemoryStore` and `RedisStore` (the `backend` fixture) and
calls store methods directly: no client, no workers. Tests drive claim / finish /
recover themselves. Arguments and results are opaque bytes (the store never
unpickles). Every store is wrapped in `conftest.Checked`, so any status change that
`status.can_move` refuses fails the test that caused it.

Where the backends differ by design (Redis leases and heartbeats expire, the memory
store sees its processes directly) tests branch explicitly and say why. Real
discrepancies are strict xfails on the offending backend (`xfail_on`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from picloud_compat.errors import CloudException, InvalidCredentials, UnknownJobError
from picloud_compat.jobspec import JobSpec
from picloud_compat.options import SubmitOptions
from picloud_compat.status import FINISHED, KILLED_MESSAGE, STALLED_MESSAGE, can_move
from picloud_compat.store.memory import IllegalMove, MemoryStore
from picloud_compat.store.records import (
    MAX_CHUNKS,
    Account,
    ChunkRef,
    Claim,
    KillRequest,
    MissingFunction,
    Notice,
    Outcome,
    Submission,
    WorkerInfo,
    WorkerLoss,
)
from picloud_compat.store.redis import RedisStore
from tests.store.conftest import Checked, IllegalStatusChange, base_settings, new_tenant

CID = "cid-a"
OTHER_CID = "cid-b"
FN_SHA = "fn-" + "0" * 61
FN_BLOB = b"FN-BLOB"
ALL_INFO = (
    "status",
    "created",
    "started",
    "finished",
    "runtime",
    "exception",
    "attempts",
    "worker",
    "parent",
    "spec",
    "stdout",
    "stderr",
    "profile",
)


# -- helpers ---------------------------------------------------------------------------


def make_sub(
    n: int = 1,
    *,
    args: Sequence[bytes] | None = None,
    deps: Sequence[int] = (),
    depends_on_errors: str = "abort",
    restartable: bool = True,
    cid: str = CID,
    fn_sha: str = FN_SHA,
    fn_blob: bytes | None = FN_BLOB,
    first: int | None = None,
    parent: int | None = None,
    label: str | None = None,
    chunks: tuple[int, ...] = (),
) -> Submission:
    """A Submission built the way `Client._submit` builds one."""
    options = SubmitOptions(
        label=label,
        depends_on=tuple(deps),
        depends_on_errors=depends_on_errors,
        restartable=restartable,
    )
    spec = JobSpec.of(options, fn_sha, "tests.store.fn")
    return Submission(
        cid=cid,
        fn_sha=spec.fn,
        fn_blob=fn_blob,
        spec_id=spec.id,
        spec_json=spec.json,
        queue=spec.type,
        priority=spec.priority,
        depends_on=spec.depends_on,
        depends_on_errors=spec.depends_on_errors,
        args=list(args) if args is not None else [b"A%d" % i for i in range(1, n + 1)],
        display_name=spec.name,
        label=spec.label,
        first=first,
        parent=parent,
        chunks=chunks,
    )


def submit(store: Checked, t: str, n: int = 1, **kw: Any) -> list[int]:
    """Submit one chunk of `n` jobs; its jids."""
    sub = make_sub(n, **kw)
    first = store.submit(t, sub)
    return list(range(first, first + len(sub.args)))


def chunk(t: str, jids: Sequence[int]) -> ChunkRef:
    return ChunkRef(t, jids[0], len(jids))


def claim(
    store: Checked,
    t: str,
    jids: Sequence[int],
    *,
    token: str = "tok1",
    worker: str = "w1",
    warden: str = "wd1",
    start: int = 0,
    max_jobs: int = 1000,
    max_bytes: int = 1 << 30,
) -> Claim:
    return store.claim(chunk(t, jids), start, max_jobs, max_bytes, worker, warden, token)


def finish(
    store: Checked,
    t: str,
    jids: Sequence[int],
    token: str = "tok1",
    status: str = "done",
    *,
    result: bytes | None = None,
    worker: str = "w1",
    end: bool = False,
    of: Sequence[int] | None = None,
    **fields: Any,
) -> None:
    """Finish `jids` (of the chunk `of`, default `jids` itself) under `token`."""
    outcomes = [Outcome(j, token, status, result=result, **fields) for j in jids]
    store.finish(chunk(t, of or jids), outcomes, worker, end)


def run(store: Checked, t: str, jids: Sequence[int], status: str = "done", **kw: Any) -> None:
    """Claim and finish `jids` with `status`, as one chunk (any jid range is a chunk)."""
    token = "run-" + uuid.uuid4().hex[:8]
    claim(store, t, jids, token=token)
    finish(store, t, jids, token, status, end=True, **kw)


def statuses(store: Checked, t: str, jids: Sequence[int]) -> list[str | None]:
    return store.statuses(t, list(jids))


def status(store: Checked, t: str, jid: int) -> str | None:
    return store.statuses(t, [jid])[0]


def info1(store: Checked, t: str, jid: int, fields: Sequence[str] = ALL_INFO) -> dict[str, Any]:
    entry = store.info(t, [jid], list(fields))[0]
    assert entry is not None
    return entry


def notices(store: Checked, t: str, cid: str = CID) -> list[Notice]:
    """Notices already delivered to `cid` (no blocking), by jid."""
    return sorted(store.pop_notices(t, cid, 0), key=lambda n: n.jid)


def moved(store: Checked, t: str, jid: int) -> list[tuple[str | None, str | None]]:
    """The status changes `Checked` saw for one job, in order."""
    return [(a, b) for _, tt, j, a, b in store.moves if tt == t and j == jid]


# -- 1. submitting ---------------------------------------------------------------------


def test_submit_queues_every_job_of_the_chunk(store: Checked, t: str) -> None:
    sub = make_sub(3)
    first = store.submit(t, sub)
    jids = [first, first + 1, first + 2]
    assert first == 1
    assert statuses(store, t, jids) == ["queued"] * 3
    assert statuses(store, t, [first + 3, 999]) == [None, None]
    assert store.unfinished(t) == jids
    assert store.jobs(t) == [(j, "queued", sub.spec_id) for j in jids]
    assert store.spec(t, sub.spec_id) == sub.spec_json
    assert JobSpec.from_json(store.spec(t, sub.spec_id) or "").fn == FN_SHA
    assert store.function(t, FN_SHA) == FN_BLOB
    assert [info1(store, t, j)["attempts"] for j in jids] == [0, 0, 0]
    assert notices(store, t) == []


def test_allocate_reserves_consecutive_jids(store: Checked, t: str) -> None:
    assert store.allocate(t, 3) == 1
    assert store.allocate(t, 2) == 4
    assert store.allocate(t, 1) == 6
    # a submit without pre-allocated jids allocates after those
    assert submit(store, t, 2) == [7, 8]
    # tenants have their own counters
    assert store.allocate(new_tenant(), 5) == 1


def test_submit_into_preallocated_jids(store: Checked, t: str) -> None:
    first = store.allocate(t, 4)
    assert submit(store, t, 2, first=first + 2) == [first + 2, first + 3]
    assert submit(store, t, 2, first=first) == [first, first + 1]
    assert statuses(store, t, range(first, first + 4)) == ["queued"] * 4
    assert store.allocate(t, 1) == first + 4


def published(store: Checked, t: str) -> dict[str, str]:
    """The tenant's published chunks that are not over: chunk key -> its Celery message
    (Redis; the memory store, the simulator's broker, has none: '')."""
    if store.backend == "redis":
        entries = {key: entry[1] for key, entry in store.raw.ledger().items()}
    else:
        entries = {key: "" for key in store.raw._ledger}
    return {key: msg for key, msg in entries.items() if key.startswith(f"{t}/")}


def test_one_submission_makes_a_chunk_of_each_size(store: Checked, t: str) -> None:
    # A small map is one request: one allocation, and a chunk (message, lease, ledger
    # entry) per process, each claimed, run and ended on its own.
    first = store.submit(t, make_sub(5, chunks=(3, 2)))
    front, back = list(range(first, first + 3)), list(range(first + 3, first + 5))
    assert statuses(store, t, front + back) == ["queued"] * 5
    assert store.allocate(t, 1) == first + 5
    chunks = published(store, t)
    assert sorted(chunks) == sorted([chunk(t, front).key, chunk(t, back).key])
    if store.backend == "redis":  # each message names its own chunk
        for jids in (front, back):
            body = json.loads(json.loads(chunks[chunk(t, jids).key])["body"])
            assert body[0] == [{"t": t, "j": jids[0], "n": len(jids)}]
    got = claim(store, t, back, token="b")
    assert ([j.jid for j in got.jobs], got.next_index) == (back, 2)
    finish(store, t, back, "b", end=True)
    assert list(published(store, t)) == [chunk(t, front).key]
    assert store.unfinished(t) == front
    run(store, t, front)
    assert published(store, t) == {} and store.unfinished(t) == []


def test_chunks_of_one_submission_wait_for_their_parent_together(store: Checked, t: str) -> None:
    (parent,) = submit(store, t)
    first = store.submit(t, make_sub(4, deps=[parent], chunks=(2, 2)))
    kids = list(range(first, first + 4))
    assert statuses(store, t, kids) == ["waiting"] * 4
    assert list(published(store, t)) == [chunk(t, [parent]).key]
    run(store, t, [parent])
    assert statuses(store, t, kids) == ["queued"] * 4
    assert sorted(published(store, t)) == sorted([chunk(t, kids[:2]).key, chunk(t, kids[2:]).key])


def test_chunks_of_one_submission_stall_together(store: Checked, t: str) -> None:
    (parent,) = submit(store, t)
    run(store, t, [parent], "error")
    first = store.submit(t, make_sub(3, deps=[parent], chunks=(1, 2)))
    assert statuses(store, t, range(first, first + 3)) == ["stalled"] * 3
    assert published(store, t) == {} and store.unfinished(t) == []


@pytest.mark.parametrize("chunks", [(2, 2), (3, 0), (1, 1, 1, -1), (1.5, 1.5), (True, 2)])
def test_chunk_sizes_must_add_up_to_the_jobs(chunks: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"chunks must be sizes"):
        make_sub(3, chunks=chunks)


def test_one_submission_makes_at_most_max_chunks_chunks(store: Checked, t: str) -> None:
    first = store.submit(t, make_sub(MAX_CHUNKS, chunks=(1,) * MAX_CHUNKS))
    assert len(published(store, t)) == MAX_CHUNKS
    assert store.allocate(t, 1) == first + MAX_CHUNKS
    with pytest.raises(ValueError, match=f"at most {MAX_CHUNKS} chunks"):
        make_sub(MAX_CHUNKS + 1, chunks=(1,) * (MAX_CHUNKS + 1))


def test_unknown_dependency_raises_and_writes_nothing(store: Checked, t: str) -> None:
    (parent,) = submit(store, t)
    sub = make_sub(2, deps=[parent, 999], fn_sha="fn-other", fn_blob=b"OTHER")
    with pytest.raises(UnknownJobError) as err:
        store.submit(t, sub)
    assert err.value.jid == 999
    assert statuses(store, t, [parent + 1, parent + 2]) == [None, None]
    assert store.function(t, "fn-other") is None
    assert store.spec(t, sub.spec_id) is None
    assert store.jobs(t) == [(parent, "queued", make_sub().spec_id)]
    assert store.unfinished(t) == [parent]
    assert store.allocate(t, 1) == parent + 1  # no jid was consumed either
    # the parent did not get a dependent: finishing it releases nothing
    run(store, t, [parent])
    assert statuses(store, t, [parent, parent + 1, parent + 2]) == ["done", None, None]


def test_missing_function_raises_and_writes_nothing(store: Checked, t: str) -> None:
    sub = make_sub(2, fn_sha="fn-never-sent", fn_blob=None)
    with pytest.raises(MissingFunction):
        store.submit(t, sub)
    assert store.jobs(t) == []
    assert store.spec(t, sub.spec_id) is None
    assert store.allocate(t, 1) == 1
    # the retry with the blob succeeds, and later submits may omit it
    sub.fn_blob = b"NOW"
    assert store.submit(t, sub) == 2
    assert store.function(t, "fn-never-sent") == b"NOW"
    assert submit(store, t, 1, fn_sha="fn-never-sent", fn_blob=None) == [4]
    # functions are per tenant
    with pytest.raises(MissingFunction):
        store.submit(new_tenant(), make_sub(1, fn_sha="fn-never-sent", fn_blob=None))


@pytest.mark.parametrize("refusal", ["unknown dependency", "missing function"])
def test_refused_submit_with_big_arguments_writes_nothing(
    store: Checked, t: str, refusal: str
) -> None:
    big = b"B" * (70 * 1024)
    kw: dict[str, Any] = {"deps": [999]}
    if refusal == "missing function":
        kw = {"fn_sha": "fn-never-sent", "fn_blob": None}
    with pytest.raises((UnknownJobError, MissingFunction)):
        store.submit(t, make_sub(args=[big, big], **kw))
    assert store.jobs(t) == []
    # Redis allocates jids for big arguments before its script runs: a refusal may skip
    # jids (never reuse them), but it must leave no argument behind.
    raw = getattr(store, "redis", None)
    if raw is not None:
        assert list(raw.scan_iter(match=f"pc:{t}:a:*")) == []


def test_submit_records_the_parent_of_nested_jobs(store: Checked, t: str) -> None:
    (top,) = submit(store, t)
    (nested,) = submit(store, t, parent=top)
    assert info1(store, t, nested, ["parent"])["parent"] == top
    assert info1(store, t, top, ["parent"])["parent"] is None


def test_big_arguments_round_trip(store: Checked, t: str) -> None:
    # Redis keeps arguments over 64 KB outside the Lua scripts (another code path)
    big = bytes(range(256)) * 400  # 100 KB
    jids = submit(store, t, args=[b"small", big, b""])
    got = claim(store, t, jids)
    assert [j.args for j in got.jobs] == [b"small", big, b""]


# -- 2. claiming -----------------------------------------------------------------------


def test_claim_moves_queued_to_processing(store: Checked, t: str) -> None:
    sub = make_sub(2, args=[b"A1", b"A2"])
    first = store.submit(t, sub)
    jids = [first, first + 1]
    before = time.time()
    got = claim(store, t, jids, token="tokA", worker="host:1", warden="wdA")
    assert got.next_index == 2
    assert [(j.jid, j.attempt, j.spec_id, j.args) for j in got.jobs] == [
        (first, 1, sub.spec_id, b"A1"),
        (first + 1, 1, sub.spec_id, b"A2"),
    ]
    assert statuses(store, t, jids) == ["processing", "processing"]
    entry = info1(store, t, first)
    assert entry["attempts"] == 1
    assert entry["worker"] == "host:1"
    assert entry["started"] >= before - 1
    assert entry["finished"] is None
    assert store.unfinished(t) == jids
    # a second claim of the same range takes nothing, but still advances
    again = claim(store, t, jids, token="tokB")
    assert again.jobs == []
    assert again.next_index == 2
    assert info1(store, t, first)["attempts"] == 1


def test_claim_next_index_follows_max_jobs(store: Checked, t: str) -> None:
    jids = submit(store, t, 5)
    c1 = claim(store, t, jids, max_jobs=2)
    assert (c1.next_index, [j.jid for j in c1.jobs]) == (2, jids[:2])
    c2 = claim(store, t, jids, start=c1.next_index, max_jobs=2)
    assert (c2.next_index, [j.jid for j in c2.jobs]) == (4, jids[2:4])
    c3 = claim(store, t, jids, start=c2.next_index, max_jobs=2)
    assert (c3.next_index, [j.jid for j in c3.jobs]) == (5, jids[4:])
    c4 = claim(store, t, jids, start=c3.next_index, max_jobs=2)
    assert (c4.next_index, c4.jobs) == (5, [])
    # max_jobs=0 takes nothing and does not move
    jids2 = submit(store, t, 2)
    c5 = claim(store, t, jids2, max_jobs=0)
    assert (c5.next_index, c5.jobs) == (0, [])


def test_a_claim_retried_under_its_token_takes_the_same_jobs(store: Checked, t: str) -> None:
    # its first reply was lost (a timeout): the jobs it took must not stay unstarted
    jids = submit(store, t, 3)
    first = claim(store, t, jids, token="tok", max_jobs=2)
    again = claim(store, t, jids, token="tok", max_jobs=2)
    assert [j.jid for j in again.jobs] == [j.jid for j in first.jobs] == jids[:2]
    assert [j.attempt for j in again.jobs] == [1, 1]  # not counted twice
    assert again.next_index == first.next_index == 2
    other = claim(store, t, jids, token="other", max_jobs=3)
    assert [j.jid for j in other.jobs] == jids[2:]  # another claimant only gets the rest


def test_claim_skips_jobs_that_are_not_queued(store: Checked, t: str) -> None:
    jids = submit(store, t, 4)
    assert store.kill(t, [jids[1]]) == [jids[1]]
    got = claim(store, t, jids, max_jobs=2)
    # two jobs taken, the killed one skipped (and counted in next_index)
    assert [j.jid for j in got.jobs] == [jids[0], jids[2]]
    assert got.next_index == 3


def test_claim_stops_at_max_bytes(store: Checked, t: str) -> None:
    jids = submit(store, t, args=[b"x" * 10] * 4)
    # the byte budget is checked before each job: 0 < 15, 10 < 15, then 20 >= 15
    got = claim(store, t, jids, max_bytes=15)
    assert [j.jid for j in got.jobs] == jids[:2]
    assert got.next_index == 2


def test_claim_takes_no_waiting_jobs(store: Checked, t: str) -> None:
    (parent,) = submit(store, t)
    kids = submit(store, t, 2, deps=[parent])
    assert statuses(store, t, kids) == ["waiting", "waiting"]
    got = claim(store, t, kids)
    assert got.jobs == []
    assert got.next_index == 2
    assert statuses(store, t, kids) == ["waiting", "waiting"]


# -- 3. tokens: first writer wins ------------------------------------------------------


def test_finish_with_the_owning_token_records_the_outcome(store: Checked, t: str) -> None:
    jids = submit(store, t, 2)
    claim(store, t, jids, token="tok")
    store.finish(
        chunk(t, jids),
        [
            Outcome(jids[0], "tok", "done", result=b"R1", runtime=1.25),
            Outcome(jids[1], "tok", "error", exception="Traceback: boom"),
        ],
        "w1",
        True,
    )
    assert statuses(store, t, jids) == ["done", "error"]
    assert store.results(t, jids) == [b"R1", None]
    ok, bad = info1(store, t, jids[0]), info1(store, t, jids[1])
    assert ok["runtime"] == 1.25
    assert ok["exception"] is None
    assert ok["finished"] >= ok["started"]
    assert bad["exception"] == "Traceback: boom"
    assert store.unfinished(t) == []


def test_finish_with_a_wrong_token_changes_nothing(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="right")
    finish(store, t, [jid], "wrong", result=b"NO", stdout="no")
    assert status(store, t, jid) == "processing"
    assert store.results(t, [jid]) == [None]
    assert info1(store, t, jid)["stdout"] is None
    assert notices(store, t) == []
    finish(store, t, [jid], "right", result=b"YES")
    assert (status(store, t, jid), store.results(t, [jid])) == ("done", [b"YES"])


def test_ending_a_chunk_that_ran_all_its_jobs(store: Checked, t: str) -> None:
    jids = submit(store, t, 3)
    (other,) = submit(store, t)
    claim(store, t, jids, token="tok")
    finish(store, t, jids[:2], "tok", of=jids)
    store.finish(chunk(t, jids), [Outcome(jids[2], "tok", "done")], "w1", True, ran_all=True)
    assert statuses(store, t, jids) == ["done"] * 3
    assert store.unfinished(t) == [other]
    assert store.recover(chunk(t, jids), "w1", "late") == WorkerLoss()
    assert store.kill(t, None) == [other]


def test_advance_records_outcomes_then_claims_the_next_jobs(store: Checked, t: str) -> None:
    jids, me = submit(store, t, 3), f"{t}-w1"  # worker names of its own: Redis is shared
    claim(store, t, jids, token="tok", max_jobs=1, worker=me)
    done = Outcome(jids[0], "tok", "done", result=b"R0", runtime=0.5)
    nxt = store.advance(chunk(t, jids), [done], 1, 1, 1 << 30, me, "wd1", "tok")
    assert [j.jid for j in nxt.jobs] == [jids[1]] and nxt.next_index == 2
    assert statuses(store, t, jids) == ["done", "processing", "queued"]
    assert store.results(t, jids[:1]) == [b"R0"]
    assert notices(store, t) == [Notice(jids[0], "done", b"R0")]
    # the chunk goes on: the worker still holds it, so its loss requeues the rest
    loss = store.recover_worker(me, "process died")
    assert (loss.requeued, loss.republished) == (1, True)


def test_advance_that_claims_nothing_ends_the_chunk(store: Checked, t: str) -> None:
    jids, me, thief = submit(store, t, 2), f"{t}-w1", f"{t}-w2"
    claim(store, t, jids, token="owner", max_jobs=1, worker=me)
    claim(store, t, jids, token="thief", worker=thief, start=1)  # the rest, stolen
    finish(store, t, [jids[1]], "thief", worker=thief, of=jids)
    last = Outcome(jids[0], "owner", "error", exception="boom")
    nxt = store.advance(chunk(t, jids), [last], 1, 4, 1 << 30, me, "wd1", "owner")
    assert nxt.jobs == [] and nxt.next_index == 2
    assert statuses(store, t, jids) == ["error", "done"]
    assert notices(store, t) == [Notice(jids[0], "error", None), Notice(jids[1], "done", None)]
    # the owner let go of the chunk, and the chunk (all finished) left the ledger
    if store.backend == "redis":
        assert not [lease for lease in store.raw.leases() if lease.endswith(f"|{me}")]
        assert chunk(t, jids).key not in store.raw.ledger()
    else:
        assert not store.raw._held.get(me)
        assert chunk(t, jids).key not in store.raw._ledger
    assert store.unfinished(t) == []


def test_advance_ignores_outcomes_it_does_not_own(store: Checked, t: str) -> None:
    jids = submit(store, t, 2)
    claim(store, t, jids, token="tok", max_jobs=1)
    assert store.kill(t, [jids[0]]) == [jids[0]]
    late = Outcome(jids[0], "tok", "done", result=b"LATE")
    nxt = store.advance(chunk(t, jids), [late], 1, 1, 1 << 30, "w1", "wd1", "tok")
    assert [j.jid for j in nxt.jobs] == [jids[1]]
    assert statuses(store, t, jids) == ["killed", "processing"]
    assert store.results(t, jids[:1]) == [None]


def test_first_writer_wins_within_and_across_calls(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok")
    store.finish(
        chunk(t, [jid]),
        [Outcome(jid, "tok", "done", result=b"FIRST"), Outcome(jid, "tok", "error")],
        "w1",
        False,
    )
    finish(store, t, [jid], "tok", "error", exception="late")
    assert status(store, t, jid) == "done"
    assert store.results(t, [jid]) == [b"FIRST"]
    assert info1(store, t, jid)["exception"] is None
    assert notices(store, t) == [Notice(jid, "done", b"FIRST")]


def test_late_finish_after_kill_is_ignored(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok")
    assert store.kill(t, [jid]) == [jid]
    finish(store, t, [jid], "tok", result=b"LATE", stdout="late output", runtime=3.0)
    assert status(store, t, jid) == "killed"
    assert store.results(t, [jid]) == [None]
    entry = info1(store, t, jid)
    assert entry["exception"] == KILLED_MESSAGE
    assert entry["stdout"] is None
    assert entry["runtime"] < 1.0  # until the kill: the late finish's 3.0 is ignored
    assert notices(store, t) == [Notice(jid, "killed", None)]


def test_stale_token_of_a_recovered_attempt_is_ignored(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="gen1", worker="w1")
    assert store.recover(chunk(t, [jid]), "w1", "worker died").requeued == 1
    second = claim(store, t, [jid], token="gen2", worker="w2")
    assert second.jobs[0].attempt == 2
    finish(store, t, [jid], "gen1", result=b"OLD", worker="w1")
    assert status(store, t, jid) == "processing"
    assert info1(store, t, jid)["worker"] == "w2"
    finish(store, t, [jid], "gen2", result=b"NEW", worker="w2")
    assert (status(store, t, jid), store.results(t, [jid])) == ("done", [b"NEW"])


# -- 4. unclaim ------------------------------------------------------------------------


def test_unclaim_gives_jobs_back_without_counting_the_attempt(store: Checked, t: str) -> None:
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok")
    store.unclaim(chunk(t, jids), jids[1:], "tok")
    assert statuses(store, t, jids) == ["processing", "queued", "queued"]
    returned = info1(store, t, jids[1])
    assert (returned["attempts"], returned["worker"], returned["started"]) == (0, None, None)
    again = claim(store, t, jids, token="tok2", worker="w2")
    assert [(j.jid, j.attempt) for j in again.jobs] == [(jids[1], 1), (jids[2], 1)]
    assert info1(store, t, jids[1])["worker"] == "w2"


def test_unclaim_with_a_wrong_token_is_ignored(store: Checked, t: str) -> None:
    jids = submit(store, t, 2)
    claim(store, t, jids, token="tok")
    store.unclaim(chunk(t, jids), jids, "other")
    assert statuses(store, t, jids) == ["processing", "processing"]
    assert info1(store, t, jids[0])["attempts"] == 1
    # unclaiming finished or queued jobs does nothing either
    finish(store, t, jids[:1], "tok", of=jids)
    store.unclaim(chunk(t, jids), jids, "tok")
    assert statuses(store, t, jids) == ["done", "queued"]
    (queued,) = submit(store, t)
    store.unclaim(chunk(t, [queued]), [queued], "tok")
    assert (status(store, t, queued), info1(store, t, queued)["attempts"]) == ("queued", 0)


# -- 5. recovery -----------------------------------------------------------------------


def test_recover_requeues_restartable_jobs(store: Checked, t: str) -> None:
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok", worker="w1", max_jobs=2)
    loss = store.recover(chunk(t, jids), "w1", "worker died")
    assert loss == WorkerLoss(requeued=2, errored=0, republished=True)
    assert statuses(store, t, jids) == ["queued"] * 3
    entry = info1(store, t, jids[0])
    assert (entry["attempts"], entry["worker"], entry["started"]) == (1, None, None)
    again = claim(store, t, jids, token="tok2", worker="w2")
    assert [(j.jid, j.attempt) for j in again.jobs] == [(jids[0], 2), (jids[1], 2), (jids[2], 1)]
    assert moved(store, t, jids[0]) == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "queued"),
        ("queued", "processing"),
    ]


def test_recover_errors_jobs_lost_max_attempts_times(make_store: Any, t: str) -> None:
    store = make_store(max_attempts=3)
    (jid,) = submit(store, t)
    (dependent,) = submit(store, t, deps=[jid])
    for attempt in (1, 2):
        got = claim(store, t, [jid], token=f"gen{attempt}", worker=f"w{attempt}")
        assert got.jobs[0].attempt == attempt
        loss = store.recover(chunk(t, [jid]), f"w{attempt}", "segfault")
        assert loss == WorkerLoss(1, 0, True)
        assert status(store, t, jid) == "queued"
    claim(store, t, [jid], token="gen3", worker="w3")
    loss = store.recover(chunk(t, [jid]), "w3", "segfault")
    assert loss == WorkerLoss(requeued=0, errored=1, republished=False)
    assert status(store, t, jid) == "error"
    entry = info1(store, t, jid)
    assert entry["attempts"] == 3
    assert entry["exception"] == "segfault (worker lost 3 times)"
    assert "worker lost 3 times" in entry["exception"]
    # the error propagates like any other
    assert status(store, t, dependent) == "stalled"
    assert notices(store, t) == [Notice(jid, "error", None), Notice(dependent, "stalled", None)]
    assert store.unfinished(t) == []


def test_recover_with_one_attempt_allowed_errors_at_once(make_store: Any, t: str) -> None:
    store = make_store(max_attempts=1)
    (jid,) = submit(store, t)
    claim(store, t, [jid], worker="w1")
    assert store.recover(chunk(t, [jid]), "w1", "gone") == WorkerLoss(0, 1, False)
    assert info1(store, t, jid)["exception"] == "gone (worker lost 1 times)"


def test_recover_fails_non_restartable_jobs_with_the_reason(store: Checked, t: str) -> None:
    jids = submit(store, t, 2, restartable=False)
    claim(store, t, jids, worker="w1", max_jobs=1)
    loss = store.recover(chunk(t, jids), "w1", "worker lost: OOM")
    # the chunk still has a queued job: it is published again for someone to run it
    assert loss == WorkerLoss(requeued=0, errored=1, republished=True)
    assert statuses(store, t, jids) == ["error", "queued"]
    entry = info1(store, t, jids[0])
    assert entry["exception"] == "worker lost: OOM"
    assert entry["attempts"] == 1
    assert notices(store, t) == [Notice(jids[0], "error", None)]


def test_recover_touches_only_the_dead_workers_jobs(store: Checked, t: str) -> None:
    jids = submit(store, t, 3)
    claim(store, t, jids, token="a", worker="w1", max_jobs=1)
    claim(store, t, jids, token="b", worker="w2", start=1, max_jobs=1)
    loss = store.recover(chunk(t, jids), "w1", "died")
    assert loss == WorkerLoss(1, 0, True)
    assert statuses(store, t, jids) == ["queued", "processing", "queued"]
    assert info1(store, t, jids[1])["worker"] == "w2"
    # nothing left to recover for w1; unknown workers recover nothing
    assert store.recover(chunk(t, jids), "w1", "died").requeued == 0
    loss = store.recover(chunk(t, jids), "nobody", "died")
    assert (loss.requeued, loss.errored) == (0, 0)
    assert statuses(store, t, jids) == ["queued", "processing", "queued"]


def test_recover_worker_recovers_what_it_claimed(store: Checked, t: str) -> None:
    # Memory finds the dead process's jobs directly; Redis through the lease that
    # claim took for the worker. Either way the claimed jobs come back.
    jids = submit(store, t, 2)
    other = submit(store, t, 2)
    claim(store, t, jids, token="a", worker="proc-1")
    claim(store, t, other, token="b", worker="proc-2")
    loss = store.recover_worker("proc-1", "process died")
    assert (loss.requeued, loss.errored, loss.republished) == (2, 0, True)
    assert statuses(store, t, jids) == ["queued", "queued"]
    assert statuses(store, t, other) == ["processing", "processing"]
    again = claim(store, t, jids, token="c", worker="proc-3")
    assert [j.attempt for j in again.jobs] == [2, 2]
    # a second recovery of the same process finds nothing
    assert store.recover_worker("proc-1", "process died") == WorkerLoss()


def test_recover_worker_fails_non_restartable_jobs(store: Checked, t: str) -> None:
    (jid,) = submit(store, t, restartable=False)
    claim(store, t, [jid], worker="proc-9")
    loss = store.recover_worker("proc-9", "process died")
    assert (loss.requeued, loss.errored) == (0, 1)
    assert info1(store, t, jid)["exception"] == "process died"


def test_recover_worker_after_the_chunk_ended_does_nothing(store: Checked, t: str) -> None:
    jids = submit(store, t, 2)
    claim(store, t, jids, worker="proc-1")
    finish(store, t, jids, end=True, worker="proc-1")
    assert store.recover_worker("proc-1", "process died") == WorkerLoss()
    assert statuses(store, t, jids) == ["done", "done"]


def test_memory_recover_worker_covers_chunks_taken_but_not_claimed(t: str) -> None:
    # Memory only: `next_chunk` is the simulator's broker (Redis uses Celery). A
    # process that took a chunk and died before claiming anything loses nothing.
    raw = MemoryStore(base_settings("redis://unused"))
    store = Checked(raw, "memory")
    try:
        jids = submit(store, t, 3)
        got = raw.next_chunk(1.0, "proc-1")
        assert got == ChunkRef(t, jids[0], 3)
        assert raw.next_chunk(0.01, "proc-2") is None
        claim(store, t, jids, worker="proc-1", max_jobs=1)
        loss = store.recover_worker("proc-1", "process died")
        assert loss == WorkerLoss(1, 0, True)
        assert statuses(store, t, jids) == ["queued"] * 3
        # the chunk is queued again for the next process
        assert raw.next_chunk(1.0, "proc-2") == got
    finally:
        raw.close()


# -- 6. dependencies and stall chains --------------------------------------------------


def test_error_stalls_the_chain_below_it(store: Checked, t: str) -> None:
    (a,) = submit(store, t)
    (b,) = submit(store, t, deps=[a])
    (c,) = submit(store, t, deps=[b])
    assert statuses(store, t, [a, b, c]) == ["queued", "waiting", "waiting"]
    assert store.unfinished(t) == [a, b, c]
    run(store, t, [a], "error", exception="boom")
    assert statuses(store, t, [a, b, c]) == ["error", "stalled", "stalled"]
    for jid in (b, c):
        entry = info1(store, t, jid)
        assert entry["exception"] == STALLED_MESSAGE
        assert entry["finished"] is not None
        assert moved(store, t, jid) == [(None, "waiting"), ("waiting", "stalled")]
    assert notices(store, t) == [
        Notice(a, "error", None),
        Notice(b, "stalled", None),
        Notice(c, "stalled", None),
    ]
    assert store.unfinished(t) == []


def test_ignore_releases_dependents_of_a_failed_parent(store: Checked, t: str) -> None:
    (a,) = submit(store, t)
    (b,) = submit(store, t, deps=[a], depends_on_errors="ignore")
    (c,) = submit(store, t, deps=[a])
    run(store, t, [a], "error")
    assert statuses(store, t, [b, c]) == ["queued", "stalled"]
    assert claim(store, t, [b]).jobs[0].jid == b


def test_done_parent_releases_dependents(store: Checked, t: str) -> None:
    (a,) = submit(store, t)
    kids = submit(store, t, 3, deps=[a])
    run(store, t, [a])
    assert statuses(store, t, kids) == ["queued"] * 3
    assert [j.jid for j in claim(store, t, kids).jobs] == kids
    for kid in kids:
        assert moved(store, t, kid)[:2] == [(None, "waiting"), ("waiting", "queued")]


def test_dependents_wait_for_every_parent(store: Checked, t: str) -> None:
    a, b = submit(store, t, 2)
    (kid,) = submit(store, t, deps=[a, b])
    run(store, t, [a])
    assert status(store, t, kid) == "waiting"
    run(store, t, [b])
    assert status(store, t, kid) == "queued"


def test_a_finished_parent_does_not_count_as_pending(store: Checked, t: str) -> None:
    done, live = submit(store, t, 2)
    run(store, t, [done])
    (kid,) = submit(store, t, deps=[done, live])
    assert status(store, t, kid) == "waiting"
    run(store, t, [live])
    assert status(store, t, kid) == "queued"


@pytest.mark.parametrize("outcome", ["done", "error"])
def test_a_parent_named_twice(store: Checked, t: str, outcome: str) -> None:
    (a,) = submit(store, t)
    (kid,) = submit(store, t, deps=[a, a])
    run(store, t, [a], outcome)
    assert status(store, t, kid) == ("queued" if outcome == "done" else "stalled")


def test_one_failed_parent_of_several_stalls(store: Checked, t: str) -> None:
    a, b = submit(store, t, 2)
    (kid,) = submit(store, t, deps=[a, b])
    run(store, t, [a])
    store.kill(t, [b])
    assert status(store, t, kid) == "stalled"


def test_submit_after_the_parent_finished(store: Checked, t: str) -> None:
    (ok,) = submit(store, t)
    (bad,) = submit(store, t)
    run(store, t, [ok])
    run(store, t, [bad], "error")
    notices(store, t)
    assert statuses(store, t, submit(store, t, 2, deps=[ok])) == ["queued", "queued"]
    stalled = submit(store, t, 2, deps=[ok, bad])
    assert statuses(store, t, stalled) == ["stalled", "stalled"]
    assert info1(store, t, stalled[0])["exception"] == STALLED_MESSAGE
    assert notices(store, t) == [Notice(j, "stalled", None) for j in stalled]
    assert not set(stalled) & set(store.unfinished(t))
    ignored = submit(store, t, deps=[bad], depends_on_errors="ignore")
    assert statuses(store, t, ignored) == ["queued"]


def test_killing_a_waiting_job_keeps_it_killed_when_released(store: Checked, t: str) -> None:
    (a,) = submit(store, t)
    kids = submit(store, t, 2, deps=[a])
    assert store.kill(t, [kids[0]]) == [kids[0]]
    run(store, t, [a])
    assert statuses(store, t, kids) == ["killed", "queued"]


@pytest.mark.parametrize("how", ["error", "kill"])
def test_a_deep_chain_stalls_without_recursion_limits(store: Checked, t: str, how: str) -> None:
    (root,) = submit(store, t)
    chain = [root]
    for _ in range(200):
        chain += submit(store, t, deps=[chain[-1]])
    if how == "kill":
        assert store.kill(t, [root]) == [root]
    else:
        run(store, t, [root], "error")
    got = statuses(store, t, chain)
    assert got[0] == ("killed" if how == "kill" else "error")
    assert got[1:] == ["stalled"] * 200
    assert store.unfinished(t) == []
    assert len(notices(store, t)) == 201


# -- 7. kill ---------------------------------------------------------------------------


def test_kill_unfinished_jobs(store: Checked, t: str) -> None:
    (queued,) = submit(store, t)
    (running,) = submit(store, t)
    (waiting,) = submit(store, t, deps=[running])
    claim(store, t, [running], token="tok")
    time.sleep(0.05)
    # the waiting job first: killing its parent first would stall it instead
    killed = store.kill(t, [waiting, queued, running])
    assert sorted(killed) == [queued, running, waiting]
    assert statuses(store, t, [queued, running, waiting]) == ["killed"] * 3
    for jid in (queued, running, waiting):
        entry = info1(store, t, jid)
        assert entry["exception"] == KILLED_MESSAGE
        assert entry["finished"] is not None
    # the one that ran has run until the kill; the others never ran
    assert 0.05 <= info1(store, t, running)["runtime"] < 5
    assert [info1(store, t, j)["runtime"] for j in (queued, waiting)] == [None, None]
    assert notices(store, t) == [Notice(j, "killed", None) for j in (queued, running, waiting)]
    assert store.unfinished(t) == []


def test_kill_of_finished_or_unknown_jobs_returns_nothing(store: Checked, t: str) -> None:
    done, failed, killed = submit(store, t, 3)
    run(store, t, [done])
    run(store, t, [failed], "error")
    store.kill(t, [killed])
    notices(store, t)
    (stalled,) = submit(store, t, deps=[failed])
    notices(store, t)
    assert store.kill(t, [done, failed, killed, stalled, 999]) == []
    assert store.kill(t, []) == []
    assert statuses(store, t, [done, failed, killed, stalled]) == [
        "done",
        "error",
        "killed",
        "stalled",
    ]
    assert notices(store, t) == []


def test_kill_with_none_kills_the_tenants_unfinished_jobs_only(store: Checked, t: str) -> None:
    other = new_tenant()
    queued = submit(store, t, 2)
    (running,) = submit(store, t)
    (waiting,) = submit(store, t, deps=[running])
    (done,) = submit(store, t)
    claim(store, t, [running])
    run(store, t, [done])
    theirs = submit(store, other, 2)
    killed = store.kill(t, None)
    # The order of a kill-all is not specified: if `running` goes first, its dependent
    # `waiting` is stalled by then and not killed (the memory store goes by jid, Redis
    # by its chunk index). Either way every unfinished job ends failed.
    assert set(killed) - {waiting} == {*queued, running}
    assert statuses(store, t, [*queued, running]) == ["killed"] * 3
    assert status(store, t, waiting) == ("killed" if waiting in killed else "stalled")
    assert status(store, t, done) == "done"
    assert statuses(store, other, theirs) == ["queued", "queued"]
    assert store.kill(t, None) == []
    assert store.unfinished(other) == theirs


def test_killing_a_processing_job_asks_its_warden(store: Checked, t: str) -> None:
    warden = "warden-" + uuid.uuid4().hex[:8]
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok-7", worker="host:77", warden=warden, max_jobs=2)
    assert sorted(store.kill(t, jids)) == jids
    requests = store.pop_kill_requests(warden, 2.0)
    # only the processing jobs need a process stopped
    assert sorted(requests, key=lambda r: r.jid) == [
        KillRequest(t, jids[0], "host:77", "tok-7"),
        KillRequest(t, jids[1], "host:77", "tok-7"),
    ]
    started = time.monotonic()
    assert store.pop_kill_requests(warden, 0.2) == []
    assert time.monotonic() - started < 2


def test_kill_requests_go_to_the_claiming_warden(store: Checked, t: str, backend: str) -> None:
    mine, theirs = ("warden-" + uuid.uuid4().hex[:8] for _ in range(2))
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok", worker="host:1", warden=mine)
    store.kill(t, [jid])
    expected = [KillRequest(t, jid, "host:1", "tok")]
    # By design: a Redis warden has its own queue; the simulator has a single warden,
    # so the memory store hands every request to whoever asks.
    if backend == "redis":
        assert store.pop_kill_requests(theirs, 0.05) == []
        assert store.pop_kill_requests(mine, 1.0) == expected
    else:
        assert store.pop_kill_requests(theirs, 0.05) == expected
        assert store.pop_kill_requests(mine, 0.05) == []


def test_kill_records_the_reason(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid])
    reason = "Killed: exceeded _max_runtime of 1 minutes"
    assert store.kill(t, [jid], reason) == [jid]
    assert info1(store, t, jid)["exception"] == reason


def test_pop_kill_requests_with_zero_timeout_does_not_block(make_store: Any) -> None:
    store = make_store(redis_socket_timeout=1.0)
    started = time.monotonic()
    assert store.pop_kill_requests("warden-" + uuid.uuid4().hex[:8], 0) == []
    assert time.monotonic() - started < 0.5


# -- 8. notices and watching -----------------------------------------------------------


def test_finishing_notifies_the_submitter(store: Checked, t: str) -> None:
    small, big, failed = submit(store, t, 3)
    claim(store, t, [small, big, failed], token="tok")
    store.finish(
        chunk(t, [small, big, failed]),
        [
            Outcome(small, "tok", "done", result=b"x" * 16),  # the inline limit is 16
            Outcome(big, "tok", "done", result=b"y" * 17),
            Outcome(failed, "tok", "error", exception="E"),
        ],
        "w1",
        True,
    )
    assert notices(store, t) == [
        Notice(small, "done", b"x" * 16),
        Notice(big, "done", None),  # too big to ride along: read it with results()
        Notice(failed, "error", None),
    ]
    assert store.results(t, [small, big, failed]) == [b"x" * 16, b"y" * 17, None]
    assert notices(store, t) == []  # popped notices are gone
    assert notices(store, t, OTHER_CID) == []


def test_pop_notices_returns_at_once_when_there_are_some(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    run(store, t, [jid], result=b"R")
    started = time.monotonic()
    assert store.pop_notices(t, CID, 5.0) == [Notice(jid, "done", b"R")]
    assert time.monotonic() - started < 1


def test_pop_notices_wakes_up_when_a_job_finishes(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok")

    def later() -> None:
        time.sleep(0.2)
        store.raw.finish(chunk(t, [jid]), [Outcome(jid, "tok", "done")], "w1", True)

    thread = threading.Thread(target=later)
    started = time.monotonic()
    thread.start()
    try:
        got = store.pop_notices(t, CID, 5.0)
    finally:
        thread.join()
    assert got == [Notice(jid, "done", None)]
    assert time.monotonic() - started < 3


def test_pop_notices_times_out_empty(store: Checked, t: str) -> None:
    started = time.monotonic()
    assert store.pop_notices(t, CID, 0.2) == []
    assert 0.1 <= time.monotonic() - started < 2


def test_watch_delivers_notices_to_another_client(store: Checked, t: str) -> None:
    a, b = submit(store, t, 2)
    assert store.watch(t, OTHER_CID, [a, b, 999]) == ["queued", "queued", None]
    assert store.watch(t, CID, [a]) == ["queued"]  # the submitter watching: no double
    claim(store, t, [a, b], token="tok")
    assert store.watch(t, OTHER_CID, [b]) == ["processing"]  # watching twice: one notice
    finish(store, t, [a, b], "tok", result=b"R")
    assert notices(store, t, OTHER_CID) == [Notice(a, "done", b"R"), Notice(b, "done", b"R")]
    assert notices(store, t, CID) == [Notice(a, "done", b"R"), Notice(b, "done", b"R")]


def test_watch_of_finished_jobs_returns_their_status_only(store: Checked, t: str) -> None:
    done, failed = submit(store, t, 2)
    run(store, t, [done])
    store.kill(t, [failed])
    assert store.watch(t, OTHER_CID, [done, failed]) == ["done", "killed"]
    assert notices(store, t, OTHER_CID) == []


def test_watchers_hear_of_kills_and_stalls(store: Checked, t: str) -> None:
    (a,) = submit(store, t)
    (b,) = submit(store, t, deps=[a], cid="cid-c")
    assert store.watch(t, OTHER_CID, [a, b]) == ["queued", "waiting"]
    store.kill(t, [a])
    assert notices(store, t, OTHER_CID) == [Notice(a, "killed", None), Notice(b, "stalled", None)]
    assert notices(store, t, "cid-c") == [Notice(b, "stalled", None)]
    assert notices(store, t, CID) == [Notice(a, "killed", None)]


def test_notices_are_per_tenant(store: Checked, t: str) -> None:
    other = new_tenant()
    (jid,) = submit(store, other)
    run(store, other, [jid])
    assert notices(store, t) == []
    assert notices(store, other) == [Notice(jid, "done", None)]


# -- 9. delete -------------------------------------------------------------------------


def test_delete_is_all_or_nothing(store: Checked, t: str) -> None:
    done, running = submit(store, t, 2)
    claim(store, t, [done, running], token="tok")
    finish(store, t, [done], "tok", result=b"R", of=[done, running])
    with pytest.raises(CloudException) as err:
        store.delete(t, [done, running])
    assert not isinstance(err.value, UnknownJobError)
    assert err.value.jid == running
    assert statuses(store, t, [done, running]) == ["done", "processing"]
    assert store.results(t, [done]) == [b"R"]


def test_delete_of_unknown_jobs(store: Checked, t: str) -> None:
    (done,) = submit(store, t)
    run(store, t, [done], result=b"R")
    with pytest.raises(UnknownJobError) as err:
        store.delete(t, [done, 999])
    assert err.value.jid == 999
    assert status(store, t, done) == "done"
    with pytest.raises(UnknownJobError):
        store.delete(new_tenant(), [done])  # someone else's jid is unknown
    assert store.results(t, [done]) == [b"R"]


def test_delete_removes_finished_jobs(store: Checked, t: str) -> None:
    done, failed, killed = submit(store, t, 3)
    claim(store, t, [done, failed], token="tok")
    store.append_output(t, done, "some output", "")
    finish(store, t, [done], "tok", result=b"R", of=[done, failed, killed], stdout="!")
    finish(store, t, [failed], "tok", "error", of=[done, failed, killed])
    store.kill(t, [killed])
    (stalled,) = submit(store, t, deps=[failed])
    (kept,) = submit(store, t)
    gone = [done, failed, killed, stalled]
    store.delete(t, gone)
    assert statuses(store, t, gone) == [None] * 4
    assert store.info(t, gone, ["status", "stdout"]) == [None] * 4
    assert store.results(t, gone) == [None] * 4
    assert store.jobs(t) == [(kept, "queued", make_sub().spec_id)]
    assert store.unfinished(t) == [kept]
    with pytest.raises(UnknownJobError):
        store.submit(t, make_sub(deps=[done]))
    store.delete(t, [])  # nothing to do


# -- 10. info, results, spec, function, listings ---------------------------------------


def test_info_through_a_jobs_life(store: Checked, t: str) -> None:
    sub = make_sub(1)
    before = time.time()
    jid = store.submit(t, sub)
    entry = info1(store, t, jid)
    assert entry["status"] == "queued"
    assert before - 1 <= entry["created"] <= time.time() + 1
    assert entry["spec"] == sub.spec_id
    assert (entry["attempts"], entry["worker"], entry["exception"]) == (0, None, None)
    assert (entry["started"], entry["finished"], entry["runtime"]) == (None, None, None)
    assert (entry["stdout"], entry["stderr"], entry["profile"]) == (None, None, None)

    claim(store, t, [jid], token="tok", worker="host:5")
    store.append_output(t, jid, "line 1\n", "warn 1\n")
    store.append_output(t, jid, "line 2\n", "")
    entry = info1(store, t, jid)
    assert (entry["status"], entry["attempts"], entry["worker"]) == ("processing", 1, "host:5")
    assert (entry["stdout"], entry["stderr"]) == ("line 1\nline 2\n", "warn 1\n")

    finish(
        store,
        t,
        [jid],
        "tok",
        result=b"RES",
        stdout="line 3\n",
        stderr="warn 2\n",
        profile="PROFILE",
        runtime=0.5,
    )
    entry = info1(store, t, jid)
    assert entry["status"] == "done"
    assert entry["stdout"] == "line 1\nline 2\nline 3\n"
    assert entry["stderr"] == "warn 1\nwarn 2\n"
    assert entry["profile"] == "PROFILE"
    assert entry["runtime"] == 0.5
    assert entry["started"] <= entry["finished"]
    assert entry["worker"] == "host:5"
    assert store.results(t, [jid]) == [b"RES"]


def test_info_answers_only_what_was_asked(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    assert store.info(t, [jid, 999], ["attempts"]) == [{"status": "queued", "attempts": 0}, None]
    assert store.info(t, [jid], []) == [{"status": "queued"}]
    assert store.info(t, [], ["status"]) == []
    assert store.info(new_tenant(), [jid], ["status"]) == [None]


def test_output_keeps_only_the_tail(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)  # output_limit is 64
    claim(store, t, [jid], token="tok")
    store.append_output(t, jid, "a" * 50, "")
    store.append_output(t, jid, "b" * 10, "")
    finish(store, t, [jid], "tok", stdout="c" * 20)
    assert info1(store, t, jid)["stdout"] == "a" * 34 + "b" * 10 + "c" * 20


def test_results_spec_function_of_unknown_things(store: Checked, t: str) -> None:
    (jid,) = submit(store, t)
    assert store.results(t, [jid, 999]) == [None, None]
    assert store.results(t, []) == []
    assert store.spec(t, "no-such-spec") is None
    assert store.function(t, "no-such-sha") is None
    assert store.spec(new_tenant(), make_sub().spec_id) is None
    assert store.function(new_tenant(), FN_SHA) is None


def test_jobs_and_unfinished_listings(store: Checked, t: str) -> None:
    labelled = make_sub(2, label="lab")
    first = store.submit(t, labelled)
    plain = submit(store, t, 2)
    run(store, t, [plain[0]])
    store.kill(t, [first])
    assert store.jobs(t) == [
        (first, "killed", labelled.spec_id),
        (first + 1, "queued", labelled.spec_id),
        (plain[0], "done", make_sub().spec_id),
        (plain[1], "queued", make_sub().spec_id),
    ]
    assert JobSpec.from_json(store.spec(t, labelled.spec_id) or "").label == "lab"
    assert store.unfinished(t) == [first + 1, plain[1]]
    assert store.jobs(new_tenant()) == []
    assert store.unfinished(new_tenant()) == []


def test_concurrency_is_at_least_two(make_store: Any) -> None:
    store = make_store(num_procs=1)
    assert store.concurrency("c1") >= 2


# -- 11. records and accounts ----------------------------------------------------------


def test_save_record_without_replace_keeps_the_first(store: Checked, t: str) -> None:
    fields = {"schedule": "* * * * *", "created": "1.5"}
    assert store.save_record(t, "cron", "nightly", fields, b"F1", replace=False) is True
    assert store.save_record(t, "cron", "nightly", {"schedule": "x"}, b"F2", replace=False) is False
    assert store.record(t, "cron", "nightly") == {"label": "nightly", **fields}
    assert store.record_function(t, "cron", "nightly") == b"F1"
    assert store.record_labels(t, "cron") == ["nightly"]
    # kinds and tenants are separate namespaces
    assert store.record(t, "rest", "nightly") is None
    assert store.record(new_tenant(), "cron", "nightly") is None
    assert store.record_function(t, "rest", "nightly") is None


def test_save_record_with_replace_overwrites(store: Checked, t: str) -> None:
    assert store.save_record(t, "rest", "ep", {"a": "1", "b": "2"}, b"F1", replace=True)
    assert store.save_record(t, "rest", "ep", {"a": "3"}, b"F2", replace=True)
    assert store.record_function(t, "rest", "ep") == b"F2"
    assert store.record(t, "rest", "ep") == {"label": "ep", "a": "3"}


def test_replacing_a_record_drops_its_old_fields(store: Checked, t: str) -> None:
    assert store.save_record(t, "rest", "ep", {"a": "1", "b": "2"}, b"F1", replace=True)
    assert store.save_record(t, "rest", "ep", {"a": "3"}, b"F2", replace=True)
    found = store.record(t, "rest", "ep")
    assert found is not None
    assert (found["a"], "b" in found) == ("3", False)
    assert store.record_labels(t, "rest") == ["ep"]


def test_update_and_delete_records(store: Checked, t: str) -> None:
    store.save_record(t, "cron", "b", {"x": "1"}, b"FB", replace=False)
    store.save_record(t, "cron", "a", {"x": "1"}, b"FA", replace=False)
    store.update_record(t, "cron", "a", {"last_run": "9.5", "x": "2"})
    assert store.record(t, "cron", "a") == {"label": "a", "x": "2", "last_run": "9.5"}
    assert store.record_labels(t, "cron") == ["a", "b"]
    assert t in store.record_owners("cron")
    assert store.delete_record(t, "cron", "a") is True
    assert store.delete_record(t, "cron", "a") is False
    assert store.record(t, "cron", "a") is None
    assert store.record_function(t, "cron", "a") is None
    assert store.record_labels(t, "cron") == ["b"]
    # updating a record that is gone does not resurrect it
    store.update_record(t, "cron", "a", {"x": "3"})
    assert store.record(t, "cron", "a") is None
    assert store.record_labels(t, "cron") == ["b"]
    assert store.delete_record(t, "rest", "nothing") is False
    assert store.record_labels(t, "rest") == []
    assert t not in store.record_owners("rest")


def test_record_owners_are_tenants_having_records(store: Checked, t: str) -> None:
    store.save_record(t, "cron", "only", {"schedule": "* * * * *"}, b"F", replace=False)
    assert t in store.record_owners("cron")
    assert store.delete_record(t, "cron", "only")
    assert t not in store.record_owners("cron")


def test_records_without_fields(store: Checked, t: str) -> None:
    assert store.save_record(t, "cron", "bare", {}, b"F", replace=False) is True
    assert store.record(t, "cron", "bare") == {"label": "bare"}
    assert store.record_function(t, "cron", "bare") == b"F"
    assert store.record_labels(t, "cron") == ["bare"]
    store.update_record(t, "cron", "bare", {})
    assert store.record(t, "cron", "bare") == {"label": "bare"}


def test_claim_once(store: Checked, t: str) -> None:
    assert store.claim_once(t, "cron:a@100", 60) is True
    assert store.claim_once(t, "cron:a@100", 60) is False
    assert store.claim_once(t, "cron:a@160", 60) is True
    assert store.claim_once(new_tenant(), "cron:a@100", 60) is True


def test_claim_once_holds_for_the_whole_ttl(store: Checked, t: str) -> None:
    assert store.claim_once(t, "m", 1.9) is True
    time.sleep(1.2)
    assert store.claim_once(t, "m", 1.9) is False


def test_accounts(store: Checked) -> None:
    k1 = store.create_account("hash-1", "first", 1000.5)
    k2 = store.create_account("hash-2", "second", 1001.25)
    assert k1 != k2
    assert k1.isdigit() and k2.isdigit()
    assert store.account(k1) == Account(k1, "hash-1", True, 1000.5, "first")
    assert store.account(k2) == Account(k2, "hash-2", True, 1001.25, "second")
    assert store.account("no-such-key") is None
    listed = store.accounts()
    assert [a.api_key for a in listed] == sorted((a.api_key for a in listed), key=int)
    assert {k1, k2} <= {a.api_key for a in listed}
    assert store.set_account_active("no-such-key", False) is False
    assert store.account("no-such-key") is None


def test_deactivated_keys_cannot_submit(store: Checked) -> None:
    key = store.create_account("h", "", 1.0)
    (jid,) = submit(store, key)
    assert store.set_account_active(key, False) is True
    assert store.account(key) == Account(key, "h", False, 1.0, "")
    with pytest.raises(InvalidCredentials):
        store.submit(key, make_sub(2, fn_sha="fn-new", fn_blob=b"NEW"))
    assert statuses(store, key, [jid + 1, jid + 2]) == [None, None]
    assert store.function(key, "fn-new") is None
    assert store.allocate(key, 1) == jid + 1
    # other tenants are unaffected; reactivating lets the key submit again
    submit(store, new_tenant())
    assert store.set_account_active(key, True) is True
    assert store.account(key) == Account(key, "h", True, 1.0, "")
    assert statuses(store, key, submit(store, key)) == ["queued"]


def test_deactivated_keys_queued_jobs_fail_when_claimed(store: Checked) -> None:
    key = store.create_account("h", "", 1.0)
    jids = submit(store, key, 4)
    claim(store, key, jids, token="tok", max_jobs=1)
    store.set_account_active(key, False)
    got = claim(store, key, jids, start=2, token="tok2", max_jobs=1)
    assert (got.next_index, got.jobs) == (4, [])
    # from `start` on, queued jobs fail; the running one and those before start stay
    assert statuses(store, key, jids) == ["processing", "queued", "error", "error"]
    assert info1(store, key, jids[2])["exception"] == "API key deactivated"
    assert notices(store, key) == [Notice(jids[2], "error", None), Notice(jids[3], "error", None)]
    store.set_account_active(key, True)
    assert [j.jid for j in claim(store, key, jids, token="tok3").jobs] == [jids[1]]


# -- 12. status moves ------------------------------------------------------------------


def test_finishing_a_job_that_is_not_processing_changes_nothing(store: Checked, t: str) -> None:
    (parent,) = submit(store, t)
    (waiting,) = submit(store, t, deps=[parent])
    (queued,) = submit(store, t)
    done, failed, killed = submit(store, t, 3)
    trio = [done, failed, killed]
    claim(store, t, trio, token="old")
    finish(store, t, [done], "old", result=b"R", of=trio, stdout="out")
    finish(store, t, [failed], "old", "error", of=trio, exception="E")
    store.kill(t, [killed])
    (stalled,) = submit(store, t, deps=[failed])
    jids = [waiting, queued, done, failed, killed, stalled]
    notices(store, t)
    before = (store.info(t, jids, ALL_INFO), store.results(t, jids))
    for token in ("old", "other", ""):
        for st in ("done", "error"):
            for jid in jids:
                finish(store, t, [jid], token, st, result=b"LATE", stdout="late", runtime=9.0)
    assert statuses(store, t, jids) == [
        "waiting",
        "queued",
        "done",
        "error",
        "killed",
        "stalled",
    ]
    assert (store.info(t, jids, ALL_INFO), store.results(t, jids)) == before
    assert notices(store, t) == []


@pytest.mark.parametrize("bad", ["waiting", "stalled"])
def test_finish_refuses_an_illegal_move(store: Checked, t: str, bad: str) -> None:
    # Which exception is not in the contract: an Outcome refuses a status that is not a
    # finish (ValueError) before any store sees it; behind that, memory raises
    # IllegalMove (an AssertionError) and Redis's move() CloudException.
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok")
    with pytest.raises((IllegalMove, CloudException, ValueError)):
        finish(store, t, [jid], "tok", bad)
    assert status(store, t, jid) == "processing"
    assert store.results(t, [jid]) == [None]


def test_every_move_seen_in_a_busy_scenario_is_allowed(store: Checked, t: str) -> None:
    a, b, c = submit(store, t, 3)
    (d,) = submit(store, t, deps=[a])
    (e,) = submit(store, t, deps=[b], depends_on_errors="ignore")
    claim(store, t, [a, b, c], token="g1", worker="w1")
    store.unclaim(chunk(t, [a, b, c]), [c], "g1")
    store.recover(chunk(t, [a, b, c]), "w1", "lost")
    claim(store, t, [a, b, c], token="g2", worker="w2")
    store.finish(
        chunk(t, [a, b, c]),
        [Outcome(a, "g2", "done"), Outcome(b, "g2", "error")],
        "w2",
        False,
    )
    store.kill(t, None)
    store.delete(t, [a, b, c, d, e])
    seen = {(old, new) for _, tt, _, old, new in store.moves if tt == t}
    assert seen == {
        (None, "queued"),
        (None, "waiting"),
        ("queued", "processing"),
        ("processing", "queued"),
        ("processing", "done"),
        ("processing", "error"),
        ("processing", "killed"),
        ("waiting", "queued"),
        ("queued", "killed"),
        ("done", None),
        ("error", None),
        ("killed", None),
    }
    assert all(can_move(old, new) for old, new in seen if old and new)
    assert all(old in FINISHED for old, new in seen if new is None)


def test_the_move_checker_catches_illegal_moves() -> None:
    # A self-test of conftest.Checked (no store needed), so a silent checker cannot
    # hide store bugs.
    class Fake:
        def __init__(self) -> None:
            self.state: dict[int, str] = {1: "done", 2: "queued", 3: "queued"}

        def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
            return [self.state.get(j) for j in jids]

        def finish(self) -> None:
            self.state[1] = "processing"

        def delete(self) -> None:
            del self.state[2]

        def submit(self, t: str, sub: Submission) -> int:
            self.state[9] = "processing"
            return 9

        def kill(self) -> None:
            self.state[3] = "killed"

    checked = Checked(Fake(), "fake")
    checked.track("t", [1, 2, 3])
    with pytest.raises(IllegalStatusChange, match="done -> processing"):
        checked.finish()
    with pytest.raises(IllegalStatusChange, match="queued -> None"):
        checked.delete()
    with pytest.raises(IllegalStatusChange, match="None -> processing"):
        checked.submit("t", make_sub())
    checked.kill()  # a legal move passes and is recorded
    assert checked.moves[-1] == ("kill", "t", 3, "queued", "killed")


# -- 13. supervision -------------------------------------------------------------------


def test_heartbeats_register_workers(store: Checked, backend: str) -> None:
    name = "worker-" + uuid.uuid4().hex[:8]
    info = WorkerInfo(name, ("c1", "c2"), 4, time.time())
    store.heartbeat(info)
    assert info in store.live_workers()
    fresher = WorkerInfo(name, ("c1",), 8, time.time())
    store.heartbeat(fresher)
    mine = [w for w in store.live_workers() if w.name == name]
    assert mine == [fresher]
    store.forget_worker(name)
    assert name not in {w.name for w in store.live_workers()}
    store.forget_worker(name)  # twice is fine
    # By design: Redis drops registrations older than WORKER_TIMEOUT (its workers can
    # die silently); the simulator's store lists what registered until forgotten.
    stale = WorkerInfo(name + "-stale", ("c1",), 1, time.time() - 3600)
    store.heartbeat(stale)
    listed = stale in store.live_workers()
    assert listed is (backend == "memory")
    store.forget_worker(stale.name)


def test_renew_leases_and_reap_run(store: Checked, t: str, backend: str) -> None:
    jids = submit(store, t, 2)
    claim(store, t, jids, worker="proc-1")
    store.renew_leases([(chunk(t, jids), "proc-1")], 30.0)
    store.renew_leases([], 30.0)
    done = store.reap(time.time())
    assert isinstance(done, list)
    if backend == "memory":
        assert done == []  # the simulator sees its processes die directly
    # nothing lapsed: the running jobs stay with their worker
    assert statuses(store, t, jids) == ["processing", "processing"]
    finish(store, t, jids, end=True, worker="proc-1")


def _reap_until(store: Checked, what: str, deadline: float = 4.0) -> list[str]:
    """Reap until a line mentions `what` (another test's reap may hold the 1.5 s lock)."""
    lines: list[str] = []
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        lines = store.reap(time.time())
        if any(what in line for line in lines):
            return lines
        time.sleep(0.1)
    return lines


def test_redis_reap_recovers_a_lapsed_lease(store_redis_url: str, t: str) -> None:
    # Redis only: leases are how the cluster notices a worker that died silently.
    raw = RedisStore.from_url(store_redis_url, base_settings(store_redis_url, lease_seconds=0.2))
    store = Checked(raw, "redis")
    try:
        jids = submit(store, t, 2)
        claim(store, t, jids, token="gen1", worker="host:1", max_jobs=1)
        time.sleep(0.3)
        lines = _reap_until(store, chunk(t, jids).key)
        assert any(chunk(t, jids).key in line and "host:1" in line for line in lines), lines
        assert statuses(store, t, jids) == ["queued", "queued"]
        entry = info1(store, t, jids[0])
        assert entry["attempts"] == 1 and entry["worker"] is None
        again = claim(store, t, jids, token="gen2", worker="host:2")
        assert [(j.jid, j.attempt) for j in again.jobs] == [(jids[0], 2), (jids[1], 1)]
        finish(store, t, jids, "gen1", worker="host:1")  # the lost attempt's late finish
        assert statuses(store, t, jids) == ["processing", "processing"]
        finish(store, t, jids, "gen2", worker="host:2", end=True)
        assert statuses(store, t, jids) == ["done", "done"]
    finally:
        raw.close()


def test_redis_renewed_lease_is_not_reaped(store_redis_url: str, t: str) -> None:
    raw = RedisStore.from_url(store_redis_url, base_settings(store_redis_url, lease_seconds=0.2))
    store = Checked(raw, "redis")
    try:
        renewed = submit(store, t, 1)
        lapsing = submit(store, t, 1)
        claim(store, t, renewed, worker="host:3")
        claim(store, t, lapsing, worker="host:4")
        store.renew_leases([(chunk(t, renewed), "host:3")], 30.0)
        time.sleep(0.3)
        # the reap pass that recovers the lapsing lease also looked at the renewed one
        lines = _reap_until(store, chunk(t, lapsing).key)
        assert any(chunk(t, lapsing).key in line for line in lines), lines
        assert not any(chunk(t, renewed).key in line for line in lines)
        assert statuses(store, t, [*renewed, *lapsing]) == ["processing", "queued"]
        assert store.recover_worker("host:3", "died").requeued == 1
    finally:
        raw.close()


# -- discrepancies that are edge cases of the data rather than of the protocol ---------


def test_an_empty_result_blob_is_no_result(store: Checked, t: str) -> None:
    """Sealed results are never empty; both stores read an empty blob as none."""
    (jid,) = submit(store, t)
    claim(store, t, [jid], token="tok")
    finish(store, t, [jid], "tok", result=b"")
    assert store.results(t, [jid]) == [None]
    assert notices(store, t) == [Notice(jid, "done", None)]


# -- outcomes always save ---------------------------------------------------------------


def test_unencodable_text_is_stored_escaped_and_saves_the_batch(store: Checked, t: str) -> None:
    """A lone surrogate (an undecodable file name, a REST body) in one job's output or
    exception must not stop the batch it is recorded with; both stores escape it."""
    jids = submit(store, t, 3)
    claim(store, t, jids, token="tok")
    odd = "bad name: caf\udce9.txt"
    outcomes = [
        Outcome(jids[0], "tok", "done", result=b"R", stdout="fine"),
        Outcome(jids[1], "tok", "error", exception=odd, stdout=odd, stderr=odd, profile=odd),
        Outcome(jids[2], "tok", "done", result=b"R", stdout="fine too"),
    ]
    store.finish(chunk(t, jids), outcomes, "w1", True)
    assert statuses(store, t, jids) == ["done", "error", "done"]
    entry = store.info(t, [jids[1]], ["exception", "stdout", "stderr", "profile"])[0]
    assert entry is not None
    escaped = "bad name: caf\\udce9.txt"
    assert (entry["exception"], entry["stdout"], entry["stderr"]) == (escaped,) * 3
    store.append_output(t, jids[1], odd, "")  # live output takes the same path
    entry = store.info(t, [jids[1]], ["stdout"])[0]
    assert entry is not None and entry["stdout"] == escaped + escaped


def test_the_kill_generation_moves_when_claimed_jobs_are_taken_away(store: Checked, t: str) -> None:
    """A runner starts claimed jobs one by one and re-reads them only when its worker's
    kill generation moved, so every way a claimed job is taken from it must move it."""
    worker = f"w-{t}"
    a, b, c = submit(store, t, 3)
    (queued,) = submit(store, t)
    before = store.kill_generation(worker)
    claim(store, t, [a, b, c], worker=worker)
    store.kill(t, [queued])  # not this worker's: no move
    assert store.kill_generation(worker) == before
    store.kill(t, [b])
    after_kill = store.kill_generation(worker)
    assert after_kill > before
    store.recover(chunk(t, [a, b, c]), worker, "lost")  # a and c go back to the queue
    assert store.kill_generation(worker) > after_kill
    assert store.kill_generation("some-other-worker") == 0


def test_a_claim_carries_the_kill_generation_it_was_made_under(store: Checked, t: str) -> None:
    worker = f"w-{t}"
    a, b = submit(store, t, 2)
    first = store.claim(chunk(t, [a, b]), 0, 1, 1 << 20, worker, "wd", "tok")
    store.kill(t, [a])
    second = store.claim(chunk(t, [a, b]), 1, 1, 1 << 20, worker, "wd", "tok")
    assert first.kill_generation == 0 or first.kill_generation < second.kill_generation
    assert second.kill_generation == store.kill_generation(worker)


def test_metrics_count_finished_jobs_runtimes_and_losses(store: Checked, t: str) -> None:
    before = store.metrics()
    a, b, c = submit(store, t, 3)
    claim(store, t, [a, b, c], worker="wm")
    store.finish(
        chunk(t, [a, b, c]),
        [Outcome(a, "tok1", "done", runtime=0.05), Outcome(b, "tok1", "error", runtime=5.0)],
        "wm",
        False,
    )
    store.recover(chunk(t, [a, b, c]), "wm", "lost")  # c goes back to the queue
    after = store.metrics()
    assert after.finished.get("done", 0) - before.finished.get("done", 0) == 1
    assert after.finished.get("error", 0) - before.finished.get("error", 0) == 1
    grew = [y - x for x, y in zip(before.runtime_buckets, after.runtime_buckets, strict=True)]
    assert grew == [0, 1, 0, 1, 0, 0, 0, 0]  # 0.05 s in (0.01, 0.1], 5 s in (1, 10]
    assert after.runtime_sum - before.runtime_sum == pytest.approx(5.05)
    assert after.requeued - before.requeued == 1


def test_usage_counts_a_tenants_jobs_and_cpu_by_day(store: Checked, t: str) -> None:
    from picloud_compat.store.records import utc_day

    a, b = submit(store, t, 2)
    claim(store, t, [a, b])
    store.finish(
        chunk(t, [a, b]),
        [
            Outcome(a, "tok1", "done", cpu_user=1.5, cpu_system=0.25),
            Outcome(b, "tok1", "error", cpu_user=0.25),
        ],
        "w1",
        False,
    )
    jobs, cpu = store.usage(t)[utc_day()]
    assert jobs == 2 and cpu == pytest.approx(2.0)
    assert store.usage(t + "-other") == {}
