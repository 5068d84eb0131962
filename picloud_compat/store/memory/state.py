"""The simulator store's state and the steps its operations share.

`MemoryState` holds dicts behind one re-entrant lock and mirrors the Lua helpers of
``store/redis/lua/lib.lua`` step for step (notify, publish, release, propagate, fail),
so the contract tests in ``tests/store`` hold for both stores. Every helper here is
called with the lock held.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import defaultdict, deque
from typing import Any

from picloud_compat.jobspec import JobSpec
from picloud_compat.settings import Settings
from picloud_compat.status import FINISHED, STALLED_MESSAGE, can_move
from picloud_compat.store import keys
from picloud_compat.store.records import (
    Account,
    ChunkRef,
    KillRequest,
    Notice,
    RecordKind,
    WorkerInfo,
)

Key = tuple[str, int]
Job = dict[str, Any]


class IllegalMove(AssertionError):
    """A status change outside `status.TRANSITIONS` (a bug in the store, never data)."""


class MemoryState:
    """Everything the simulator's cluster holds, and the shared state-change steps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._notice_cond = threading.Condition(self._lock)
        self._kill_cond = threading.Condition(self._lock)
        self._counters: dict[str, int] = defaultdict(int)
        self._jobs: dict[Key, Job] = {}
        self._args: dict[Key, bytes] = {}
        self._results: dict[Key, bytes] = {}
        self._outputs: dict[tuple[str, Key], str] = {}
        self._functions: dict[tuple[str, str], bytes] = {}
        self._specs: dict[tuple[str, str], str] = {}
        self._dependents: dict[Key, list[str]] = defaultdict(list)
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        self._watchers: dict[Key, set[str]] = defaultdict(set)
        self._unfinished: dict[str, set[int]] = defaultdict(set)
        self._notices: dict[tuple[str, str], deque[Notice]] = defaultdict(deque)
        # a client's hold: how many more 'done' notices before its held pop wants
        # waking; and how many plain pops wait (they take any notice at once)
        self._notice_holds: dict[tuple[str, str], int] = {}
        self._plain_pops: dict[tuple[str, str], int] = defaultdict(int)
        # the simulator's broker: per environment ('' none, else KEY:NAME, whose jobs
        # only processes of that environment's interpreter take), (priority, seq, chunk)
        self._queues: dict[str, list[tuple[int, int, ChunkRef]]] = defaultdict(list)
        self._seq = itertools.count()
        self._ledger: dict[str, int] = {}  # chunk key -> priority
        self._kills: deque[KillRequest] = deque()
        self._kill_generations: dict[str, int] = defaultdict(int)
        self._stats: dict[str, float] = defaultdict(float)  # as Redis's pc:stats
        self._usage: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
        self._held: dict[str, set[ChunkRef]] = defaultdict(set)  # worker -> chunks it took
        self._workers: dict[str, WorkerInfo] = {}
        self._records: dict[tuple[str, RecordKind, str], dict[str, str]] = {}
        self._record_functions: dict[tuple[str, RecordKind, str], bytes] = {}
        self._once: dict[tuple[str, str], float] = {}
        self._accounts: dict[str, Account] = {}
        self._closed = False

    def _move(self, job: Job, jid: int, new: str, **fields: Any) -> None:
        """The one way a status changes: refused unless the move is in the table."""
        if not can_move(job["status"], new):
            raise IllegalMove(f"job {jid}: {job['status']} -> {new}")
        job["status"] = new
        job.update(fields)
        if new in FINISHED:
            self._stats[f"finished:{new}"] += 1

    def _notify(self, t: str, jid: int, status: str, result: bytes | None) -> None:
        limit = self.settings.inline_result_limit
        inline = result if result is not None and len(result) <= limit else None
        job = self._jobs[(t, jid)]
        cid = job.get("cid")
        targets = [cid] if cid else []
        targets += [w for w in self._watchers.pop((t, jid), set()) if w != cid]
        wake = False
        for target in targets:
            self._notices[(t, target)].append(Notice(jid, status, inline))
            wake |= self._count_towards_hold((t, target), status)
        if wake:
            self._notice_cond.notify_all()

    def _count_towards_hold(self, box: tuple[str, str], status: str) -> bool:
        """Count one notice against the client's hold; True when its pops should wake
        (a plain pop takes any notice at once, held or not)."""
        left = self._notice_holds.get(box)
        if left is not None and status == "done" and left > 1:
            self._notice_holds[box] = left - 1
            return self._plain_pops.get(box, 0) > 0  # a read: no entry left behind
        self._notice_holds.pop(box, None)
        return True

    def _publish(self, t: str, first: int, count: int, priority: int) -> None:
        chunk = ChunkRef(t, first, count)
        self._ledger[chunk.key] = priority
        self._enqueue(chunk, priority)

    def _enqueue(self, chunk: ChunkRef, priority: int) -> None:
        """Queue `chunk` for the processes of its environment (its spec's ``env``)."""
        job = self._jobs.get((chunk.tenant, chunk.first), {})
        doc = self._specs.get((chunk.tenant, job.get("opts", "")))
        env = JobSpec.from_json(doc).env if doc else None
        heapq.heappush(
            self._queues[f"{chunk.tenant}:{env}" if env else ""], (priority, next(self._seq), chunk)
        )
        self._work.notify_all()  # waiters wait on different queues

    def _release(self, t: str, chunk: str) -> None:
        w = self._waiting.pop((t, chunk))
        first, count = (int(x) for x in chunk.split("+"))
        any_queued = False
        for jid in range(first, first + count):
            job = self._jobs.get((t, jid))
            if job and job["status"] == "waiting":
                self._move(job, jid, "queued")
                any_queued = True
        if any_queued:
            self._publish(t, first, count, w["priority"])

    def _propagate(self, t: str, jid: int, status: str) -> None:
        """Release or stall chunks waiting on `jid`, transitively (a work list)."""
        work = [(jid, status)]
        now = time.time()
        while work:
            parent, st = work.pop()
            for chunk in self._dependents.pop((t, parent), []):
                w = self._waiting.get((t, chunk))
                if w is None:
                    continue
                if st == "done" or w["deperr"] == "ignore":
                    w["pending"] -= 1
                    if w["pending"] <= 0:
                        self._release(t, chunk)
                    continue
                del self._waiting[(t, chunk)]
                first, count = (int(x) for x in chunk.split("+"))
                for child in range(first, first + count):
                    job = self._jobs.get((t, child))
                    if job and job["status"] == "waiting":
                        self._move(job, child, "stalled", finished=now, exc=STALLED_MESSAGE)
                        self._unfinished[t].discard(child)
                        self._notify(t, child, "stalled", None)
                        work.append((child, "stalled"))

    def _fail(self, t: str, jid: int, status: str, reason: str) -> None:
        job, now = self._jobs[(t, jid)], time.time()
        ran = {}
        if job["status"] == "processing" and job.get("started"):
            ran["runtime"] = max(0.0, now - job["started"])  # it ran until now (see lib.lua)
        self._move(job, jid, status, finished=now, exc=reason, **ran)
        self._unfinished[t].discard(jid)
        self._notify(t, jid, status, None)
        self._propagate(t, jid, status)

    def _append(self, t: str, jid: int, name: str, text: str) -> None:
        if not text:
            return
        key = (name, (t, jid))
        joined = self._outputs.get(key, "") + text
        self._outputs[key] = joined[-self.settings.output_limit :]

    def _chunk_finished(self, chunk: ChunkRef) -> bool:
        for jid in chunk.jids:
            job = self._jobs.get((chunk.tenant, jid))
            if job and job["status"] not in FINISHED:
                return False
        return True

    def _chunk_id(self, first: int, count: int) -> str:
        return keys.chunk_id(first, count)

    def close(self) -> None:
        """Wake every blocked caller; later blocking calls return at once."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
            self._notice_cond.notify_all()
            self._kill_cond.notify_all()
