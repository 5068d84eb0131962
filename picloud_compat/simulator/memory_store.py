"""`MemoryJobStore`: the job store of the simulator and ``cloud.mp``, in one process.

It implements the `JobStore` contract with dicts and one lock, mirroring the Lua
scripts of `RedisJobStore` step for step (the same contract tests run on both), and
holds the queues the simulator's worker processes pull chunks from.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from picloud_compat import keys
from picloud_compat.errors import CloudException, UnknownJobError
from picloud_compat.settings import Settings
from picloud_compat.status import FINISHED, STALLED_MESSAGE
from picloud_compat.store.base import (
    OUTPUT_FIELDS,
    ChunkRef,
    Claim,
    ClaimedJob,
    MissingFunction,
    Notice,
    Outcome,
    Submission,
    WorkerLoss,
)

Key = tuple[str, int]
_RECORD = {
    "status": "status",
    "created": "created",
    "started": "started",
    "finished": "finished",
    "runtime": "runtime",
    "exception": "exc",
    "attempts": "att",
    "worker": "worker",
    "parent": "parent",
    "options": "opts",
}


class MemoryJobStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._notice_cond = threading.Condition(self._lock)
        self._kill_cond = threading.Condition(self._lock)
        self._counters: dict[str, int] = defaultdict(int)
        self._jobs: dict[Key, dict[str, Any]] = {}
        self._args: dict[Key, bytes] = {}
        self._results: dict[Key, bytes] = {}
        self._outputs: dict[tuple[str, Key], str] = {}
        self._functions: dict[tuple[str, str], bytes] = {}
        self._options: dict[tuple[str, str], str] = {}
        self._dependents: dict[Key, list[str]] = defaultdict(list)
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        self._watchers: dict[Key, set[str]] = defaultdict(set)
        self._unfinished: dict[str, set[int]] = defaultdict(set)
        self._notices: dict[tuple[str, str], deque[Notice]] = defaultdict(deque)
        self._queue: list[tuple[int, int, ChunkRef]] = []  # (priority, seq, chunk)
        self._seq = itertools.count()
        self._ledger: dict[str, int] = {}  # chunk key -> priority
        self._kills: deque[tuple[str, int, str, str]] = deque()
        self._held: dict[str, set[ChunkRef]] = defaultdict(set)  # worker -> chunks it took
        self._closed = False

    # -- helpers (called with the lock held) --------------------------------------

    def _notify(self, t: str, jid: int, status: str, result: bytes | None) -> None:
        inline = (
            result
            if result is not None and len(result) <= self.settings.inline_result_limit
            else None
        )
        job = self._jobs[(t, jid)]
        cid = job.get("cid")
        targets = [cid] if cid else []
        targets += [w for w in self._watchers.pop((t, jid), set()) if w != cid]
        for target in targets:
            self._notices[(t, target)].append(Notice(jid, status, inline))
        if targets:
            self._notice_cond.notify_all()

    def _finalize(self, t: str, jid: int) -> None:
        self._unfinished[t].discard(jid)

    def _publish(self, t: str, first: int, count: int, priority: int) -> None:
        chunk = ChunkRef(t, first, count)
        self._ledger[keys.chunk_key(t, first, count)] = priority
        heapq.heappush(self._queue, (priority, next(self._seq), chunk))
        self._work.notify()

    def _release(self, t: str, chunk: str) -> None:
        w = self._waiting.pop((t, chunk))
        first, count = (int(x) for x in chunk.split("+"))
        any_queued = False
        for jid in range(first, first + count):
            job = self._jobs.get((t, jid))
            if job and job["status"] == "waiting":
                job["status"] = "queued"
                any_queued = True
        if any_queued:
            self._publish(t, first, count, w["priority"])

    def _propagate(self, t: str, jid: int, status: str) -> None:
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
                        job.update(status="stalled", finished=now, exc=STALLED_MESSAGE)
                        self._finalize(t, child)
                        self._notify(t, child, "stalled", None)
                        work.append((child, "stalled"))

    def _fail(self, t: str, jid: int, status: str, reason: str) -> None:
        self._jobs[(t, jid)].update(status=status, finished=time.time(), exc=reason)
        self._finalize(t, jid)
        self._notify(t, jid, status, None)
        self._propagate(t, jid, status)

    def _append(self, t: str, jid: int, name: str, text: str) -> None:
        if not text:
            return
        limit = self.settings.output_limit
        key = (name, (t, jid))
        joined = self._outputs.get(key, "") + text
        self._outputs[key] = joined[-limit:]

    def _chunk_finished(self, t: str, first: int, count: int) -> bool:
        for jid in range(first, first + count):
            job = self._jobs.get((t, jid))
            if job and job["status"] not in FINISHED:
                return False
        return True

    # -- client side -------------------------------------------------------------

    def allocate(self, t: str, count: int) -> int:
        with self._lock:
            first = self._counters[t] + 1
            self._counters[t] += count
            return first

    def submit(self, t: str, sub: Submission) -> int:
        with self._lock:
            if sub.fn_blob is None and (t, sub.fn_sha) not in self._functions:
                raise MissingFunction(sub.fn_sha)
            live, stalled = [], False
            for dep in sub.depends_on:
                job = self._jobs.get((t, dep))
                if job is None:
                    raise UnknownJobError(dep)
                st = job["status"]
                if st in ("error", "killed", "stalled"):
                    stalled = stalled or sub.depends_on_errors != "ignore"
                elif st != "done":
                    live.append(dep)
            if sub.fn_blob is not None:
                self._functions[(t, sub.fn_sha)] = sub.fn_blob
            self._options[(t, sub.options_id)] = sub.options_json
            count = len(sub.args)
            first = sub.first if sub.first is not None else self.allocate(t, count)
            status = "stalled" if stalled else ("waiting" if live else "queued")
            now = time.time()
            for i, blob in enumerate(sub.args):
                jid = first + i
                job = {
                    "status": status,
                    "opts": sub.options_id,
                    "cid": sub.cid,
                    "created": now,
                    "att": 0,
                }
                if sub.parent is not None:
                    job["parent"] = sub.parent
                self._jobs[(t, jid)] = job
                self._args[(t, jid)] = bytes(blob)  # may be a view of the client's buffer
                if stalled:
                    job.update(finished=now, exc=STALLED_MESSAGE)
                    self._notify(t, jid, "stalled", None)
                else:
                    self._unfinished[t].add(jid)
            chunk = keys.chunk_id(first, count)
            if status == "waiting":
                self._waiting[(t, chunk)] = {
                    "pending": len(live),
                    "deperr": sub.depends_on_errors,
                    "priority": sub.priority,
                }
                for dep in live:
                    self._dependents[(t, dep)].append(chunk)
            elif status == "queued":
                self._publish(t, first, count, sub.priority)
            return first

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        with self._lock:
            return [self._jobs[(t, j)]["status"] if (t, j) in self._jobs else None for j in jids]

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[dict | None]:
        out: list[dict | None] = []
        with self._lock:
            for jid in jids:
                job = self._jobs.get((t, jid))
                if job is None:
                    out.append(None)
                    continue
                entry: dict[str, Any] = {"status": job["status"]}
                for f in fields:
                    if f in _RECORD:
                        entry[f] = job.get(_RECORD[f])
                    elif f in OUTPUT_FIELDS:
                        entry[f] = self._outputs.get((f, (t, jid)))
                out.append(entry)
        return out

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        with self._lock:
            return [self._results.get((t, j)) for j in jids]

    def options(self, t: str, options_id: str) -> str | None:
        with self._lock:
            return self._options.get((t, options_id))

    def function(self, t: str, sha: str) -> bytes | None:
        with self._lock:
            return self._functions.get((t, sha))

    def kill(self, t: str, jids: Sequence[int] | None) -> list[int]:
        return self.kill_with_reason(t, jids, "Killed")

    def kill_with_reason(self, t: str, jids: Sequence[int] | None, reason: str) -> list[int]:
        killed = []
        with self._lock:
            targets = sorted(self._unfinished[t]) if jids is None else list(jids)
            for jid in targets:
                job = self._jobs.get((t, jid))
                if job is None or job["status"] not in ("waiting", "queued", "processing"):
                    continue
                if job["status"] == "processing":
                    self._kills.append((t, jid, job.get("worker", ""), job.get("token", "")))
                    self._kill_cond.notify_all()
                self._fail(t, jid, "killed", reason)
                killed.append(jid)
        return killed

    def delete(self, t: str, jids: Sequence[int]) -> None:
        with self._lock:
            for jid in jids:
                job = self._jobs.get((t, jid))
                if job is None:
                    raise UnknownJobError(jid)
                if job["status"] not in FINISHED:
                    raise CloudException(
                        f"cannot delete an unfinished job (status {job['status']}); kill it first",
                        jid=jid,
                        status=job["status"],
                    )
            for jid in jids:
                key = (t, jid)
                for table in (
                    self._jobs,
                    self._args,
                    self._results,
                    self._watchers,
                    self._dependents,
                ):
                    table.pop(key, None)
                for name in OUTPUT_FIELDS:
                    self._outputs.pop((name, key), None)

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        out: list[str | None] = []
        with self._lock:
            for jid in jids:
                job = self._jobs.get((t, jid))
                if job is None:
                    out.append(None)
                    continue
                if job["status"] not in FINISHED:
                    self._watchers[(t, jid)].add(cid)
                out.append(job["status"])
        return out

    def pop_notices(self, t: str, cid: str, timeout: float) -> list[Notice]:
        deadline = time.monotonic() + max(timeout, 0)
        with self._lock:
            box = self._notices[(t, cid)]
            while not box and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._notice_cond.wait(remaining)
            out = list(box)
            box.clear()
            return out

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        with self._lock:
            return sorted(
                (jid, job["status"], job["opts"])
                for (tt, jid), job in self._jobs.items()
                if tt == t
            )

    def unfinished(self, t: str) -> list[int]:
        with self._lock:
            return sorted(self._unfinished[t])

    # -- runner side -------------------------------------------------------------

    def next_chunk(self, timeout: float, worker: str) -> ChunkRef | None:
        """Block up to `timeout` for the most urgent queued chunk (simulator workers).

        The chunk is recorded as held by `worker` until it ends, so a worker that dies
        before even claiming it does not lose it (see `recover_worker`).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._queue and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._work.wait(remaining)
            if not self._queue:
                return None
            chunk = heapq.heappop(self._queue)[2]
            self._held[worker].add(chunk)
            return chunk

    def claim(
        self,
        chunk: ChunkRef,
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        t = chunk.tenant
        claim = Claim(start)
        taken = size = 0
        now = time.time()
        with self._lock:
            i = start
            while i < chunk.count and taken < max_jobs and size < max_bytes:
                jid = chunk.first + i
                job = self._jobs.get((t, jid))
                if job is not None and job["status"] == "queued":
                    job["att"] += 1
                    job.update(
                        status="processing", started=now, worker=worker, warden=warden, token=token
                    )
                    blob = self._args.get((t, jid), b"")
                    claim.jobs.append(ClaimedJob(jid, job["att"], job["opts"], blob))
                    size += len(blob)
                    taken += 1
                i += 1
            claim.next_index = i
        return claim

    def finish(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        worker: str,
        end: bool,
        ran_all: bool = False,
    ) -> None:
        t = chunk.tenant
        now = time.time()
        with self._lock:
            for o in outcomes:
                job = self._jobs.get((t, o.jid))
                if job is None or job["status"] != "processing" or job.get("token") != o.token:
                    continue  # killed, recovered or redelivered meanwhile: first writer won
                job.update(status=o.status, finished=now, runtime=o.runtime)
                if o.result is not None:
                    self._results[(t, o.jid)] = o.result
                if o.exception:
                    job["exc"] = o.exception
                self._append(t, o.jid, "stdout", o.stdout)
                self._append(t, o.jid, "stderr", o.stderr)
                if o.profile:
                    self._outputs[("profile", (t, o.jid))] = o.profile
                self._finalize(t, o.jid)
                self._notify(t, o.jid, o.status, o.result)
                self._propagate(t, o.jid, o.status)
            if end:
                self._held[worker].discard(chunk)
                if self._chunk_finished(t, chunk.first, chunk.count):
                    self._ledger.pop(keys.chunk_key(t, chunk.first, chunk.count), None)

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        with self._lock:
            for jid in jids:
                job = self._jobs.get((chunk.tenant, jid))
                if job and job["status"] == "processing" and job.get("token") == token:
                    job["status"] = "queued"
                    job["att"] -= 1
                    for f in ("worker", "warden", "token", "started"):
                        job.pop(f, None)

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        with self._lock:
            self._append(t, jid, "stdout", stdout)
            self._append(t, jid, "stderr", stderr)

    def renew_leases(self, chunks: Sequence[tuple[ChunkRef, str]], ttl: float) -> None:
        """Nothing to do: the simulator sees its processes die directly."""

    def recover(self, chunk: ChunkRef, dead_worker: str, reason: str) -> WorkerLoss:
        t = chunk.tenant
        loss = WorkerLoss()
        with self._lock:
            for jid in chunk.jids:
                job = self._jobs.get((t, jid))
                if not job or job["status"] != "processing" or job.get("worker") != dead_worker:
                    continue
                doc = self._options.get((t, job["opts"]))
                restartable = json.loads(doc).get("restartable", True) if doc else True
                if restartable and job["att"] < self.settings.max_attempts:
                    job["status"] = "queued"
                    for f in ("worker", "warden", "token", "started"):
                        job.pop(f, None)
                    loss.requeued += 1
                else:
                    why = (
                        reason if not restartable else f"{reason} (worker lost {job['att']} times)"
                    )
                    self._fail(t, jid, "error", why)
                    loss.errored += 1
            ck = keys.chunk_key(t, chunk.first, chunk.count)
            statuses = [self._jobs[(t, j)]["status"] for j in chunk.jids if (t, j) in self._jobs]
            if "queued" in statuses and ck in self._ledger:
                heapq.heappush(self._queue, (self._ledger[ck], next(self._seq), chunk))
                self._work.notify()
                loss.republished = True
            elif all(s in FINISHED for s in statuses):
                self._ledger.pop(ck, None)
        return loss

    def recover_worker(self, dead_worker: str, reason: str) -> WorkerLoss:
        """A simulator process died: recover every chunk it held and every job it ran."""
        total = WorkerLoss()
        with self._lock:
            chunks = set(self._held.pop(dead_worker, set()))
            for (t, jid), job in self._jobs.items():
                ran_here = job["status"] == "processing" and job.get("worker") == dead_worker
                if ran_here and not any(c.tenant == t and jid in c.jids for c in chunks):
                    # a job this process ran outside its chunks (helping a nested wait)
                    chunks.add(ChunkRef(t, jid, 1))
                    self._ledger.setdefault(keys.chunk_key(t, jid, 1), 0)
            for chunk in chunks:
                loss = self.recover(chunk, dead_worker, reason)
                total.requeued += loss.requeued
                total.errored += loss.errored
                total.republished = total.republished or loss.republished
        return total

    # -- warden side -------------------------------------------------------------

    def pop_kill_requests(self, timeout: float) -> list[tuple[str, int, str, str]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._kills and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._kill_cond.wait(remaining)
            out = list(self._kills)
            self._kills.clear()
            return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._work.notify_all()
            self._notice_cond.notify_all()
            self._kill_cond.notify_all()
