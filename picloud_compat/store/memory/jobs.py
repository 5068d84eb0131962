"""Every change of a job's state in memory, mirroring the Lua scripts step for step.

Also the simulator's broker: `next_chunk` hands queued chunks to job processes.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

from picloud_compat.errors import CloudException, InvalidCredentials, UnknownJobError
from picloud_compat.status import FINISHED, STALLED_MESSAGE
from picloud_compat.store.memory.state import Job, MemoryState
from picloud_compat.store.records import (
    OUTPUT_FIELDS,
    RUNTIME_BUCKETS,
    ChunkRef,
    Claim,
    ClaimedJob,
    KillRequest,
    MissingFunction,
    Outcome,
    Submission,
    storable,
    utc_day,
)


class MemoryJobs(MemoryState):
    """The job-life state changes, under the store's lock."""

    def allocate(self, t: str, count: int) -> int:
        """Reserve `count` consecutive jids for tenant `t`; return the first."""
        with self._lock:
            first = self._counters[t] + 1
            self._counters[t] += count
            return first

    def submit(self, t: str, sub: Submission) -> int:
        """Create the jobs atomically and queue their chunks; return the first jid."""
        with self._lock:
            account = self._accounts.get(t)
            if account is not None and not account.active:
                raise InvalidCredentials("this API key is deactivated")
            if sub.fn_blob is None and (t, sub.fn_sha) not in self._functions:
                raise MissingFunction(sub.fn_sha)
            live, stalled = [], False
            for dep in sub.depends_on:
                parent = self._jobs.get((t, dep))
                if parent is None:
                    raise UnknownJobError(dep)
                st = parent["status"]
                if st in ("error", "killed", "stalled"):
                    stalled = stalled or sub.depends_on_errors != "ignore"
                elif st != "done":
                    live.append(dep)
            if sub.fn_blob is not None:
                self._functions[(t, sub.fn_sha)] = sub.fn_blob
            self._specs[(t, sub.spec_id)] = sub.spec_json
            count = len(sub.args)
            first = sub.first if sub.first is not None else self.allocate(t, count)
            status = "stalled" if stalled else ("waiting" if live else "queued")
            now = time.time()
            for i, blob in enumerate(sub.args):
                jid = first + i
                job: Job = {
                    "status": status,
                    "opts": sub.spec_id,
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
            if status != "stalled":
                self._queue_chunks(t, sub, first, live)
            return first

    def _queue_chunks(self, t: str, sub: Submission, first: int, live: list[int]) -> None:
        """Publish each chunk of a submission, or make it wait for the `live` parents."""
        chunk_first = first
        for size in sub.chunk_sizes():
            if live:
                chunk = self._chunk_id(chunk_first, size)
                self._waiting[(t, chunk)] = {
                    "pending": len(live),
                    "deperr": sub.depends_on_errors,
                    "priority": sub.priority,
                }
                for dep in live:
                    self._dependents[(t, dep)].append(chunk)
            else:
                self._publish(t, chunk_first, size, sub.priority)
            chunk_first += size

    def next_chunk(self, timeout: float, worker: str, env: str = "") -> ChunkRef | None:
        """Block up to `timeout` for the most urgent queued chunk of environment `env`
        ('' none, else ``KEY:NAME``): the simulator's broker. The chunk is held by
        `worker` until it ends, so a worker that dies before even claiming it does not
        lose it (see `recover_worker`)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            queue = self._queues[env]
            while not queue and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._work.wait(remaining)
            if not queue:
                return None
            chunk = heapq.heappop(queue)[2]
            self._held[worker].add(chunk)
            return chunk

    def queued_environments(self) -> list[str]:
        """Environments (``KEY:NAME``) with chunks queued: the simulator starts
        processes of their interpreters."""
        with self._lock:
            return sorted(env for env, queue in self._queues.items() if env and queue)

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
        """Move queued jobs of `chunk` to processing under `token`."""
        t = chunk.tenant
        claim = Claim(start)
        taken = size = 0
        now = time.time()
        with self._lock:
            claim.kill_generation = self._kill_generations.get(worker, 0)
            account = self._accounts.get(t)
            if account is not None and not account.active:
                for jid in chunk.jids[start:]:  # a deactivated key's queued jobs never run
                    job = self._jobs.get((t, jid))
                    if job is not None and job["status"] == "queued":
                        self._fail(t, jid, "error", "API key deactivated")
                claim.next_index = chunk.count
                return claim
            i = start
            while i < chunk.count and taken < max_jobs and size < max_bytes:
                jid = chunk.first + i
                job = self._jobs.get((t, jid))
                if job is not None and _claimable(job, token):
                    if job["status"] == "queued":
                        self._move(
                            job,
                            jid,
                            "processing",
                            started=now,
                            worker=worker,
                            warden=warden,
                            token=token,
                            att=job["att"] + 1,
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
        """Record outcomes first-writer-wins; release dependents; maybe end the chunk."""
        t = chunk.tenant
        now = time.time()
        with self._lock:
            for o in outcomes:
                job = self._jobs.get((t, o.jid))
                if job is None or job["status"] != "processing" or job.get("token") != o.token:
                    continue  # killed, recovered or redelivered meanwhile: first writer won
                self._move(
                    job,
                    o.jid,
                    o.status,
                    finished=now,
                    runtime=o.runtime,
                    cu=o.cpu_user,
                    cs=o.cpu_system,
                )
                if o.memory_peak:
                    job.update(mm=o.memory_peak, mf=o.memory_failcnt)
                bucket = next(
                    (i for i, bound in enumerate(RUNTIME_BUCKETS, 1) if o.runtime <= bound),
                    len(RUNTIME_BUCKETS) + 1,
                )
                self._stats[f"runtime:{bucket}"] += 1
                day = utc_day(now)
                jobs, cpu = self._usage[t].get(day, (0, 0.0))
                self._usage[t][day] = (jobs + 1, cpu + o.cpu_user + o.cpu_system)
                self._stats["runtime_sum"] += o.runtime
                if o.result:  # as on Redis, an empty blob is no result (sealed ones never are)
                    self._results[(t, o.jid)] = o.result
                if o.exception:
                    job["exc"] = storable(o.exception)
                self._append(t, o.jid, "stdout", storable(o.stdout))
                self._append(t, o.jid, "stderr", storable(o.stderr))
                if o.profile:
                    self._outputs[("profile", (t, o.jid))] = storable(o.profile)
                self._unfinished[t].discard(o.jid)
                self._notify(t, o.jid, o.status, o.result or None)
                self._propagate(t, o.jid, o.status)
            if end:
                self._held[worker].discard(chunk)
                if self._chunk_finished(chunk):
                    self._ledger.pop(chunk.key, None)

    def advance(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        """`finish` then `claim`, atomically; nothing left to claim ends the chunk."""
        with self._lock:
            self.finish(chunk, outcomes, worker, end=False)
            claim = self.claim(chunk, start, max_jobs, max_bytes, worker, warden, token)
            if not claim.jobs:
                self.finish(chunk, [], worker, end=True)
            return claim

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        """Give back claimed jobs that never started (their attempt is not counted)."""
        with self._lock:
            for jid in jids:
                job = self._jobs.get((chunk.tenant, jid))
                if job and job["status"] == "processing" and job.get("token") == token:
                    self._move(job, jid, "queued", att=job["att"] - 1)
                    for f in ("worker", "warden", "token", "started"):
                        job.pop(f, None)

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        """Stream a running job's output (only the tail is kept)."""
        with self._lock:
            self._append(t, jid, "stdout", storable(stdout))
            self._append(t, jid, "stderr", storable(stderr))

    def kill_generation(self, worker: str) -> int:
        """How often jobs `worker` held were taken from it (killed, recovered)."""
        with self._lock:
            return self._kill_generations.get(worker, 0)

    def kill(self, t: str, jids: Sequence[int] | None, reason: str = "Killed") -> list[int]:
        """Kill unfinished jobs (all of the tenant's if None); return those killed."""
        killed = []
        with self._lock:
            targets = sorted(self._unfinished[t]) if jids is None else list(jids)
            for jid in targets:
                job = self._jobs.get((t, jid))
                if job is None or job["status"] not in ("waiting", "queued", "processing"):
                    continue
                if job["status"] == "processing":
                    request = KillRequest(t, jid, job.get("worker", ""), job.get("token", ""))
                    self._kills.append(request)
                    self._kill_cond.notify_all()
                    self._kill_generations[job.get("worker", "")] += 1
                self._fail(t, jid, "killed", reason)
                killed.append(jid)
        return killed

    def delete(self, t: str, jids: Sequence[int]) -> None:
        """Remove finished jobs' data, all or nothing."""
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
                self._jobs.pop(key, None)
                self._args.pop(key, None)
                self._results.pop(key, None)
                self._watchers.pop(key, None)
                self._dependents.pop(key, None)
                for name in OUTPUT_FIELDS:
                    self._outputs.pop((name, key), None)

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        """Register for notices about other clients' jobs; current statuses."""
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


def _claimable(job: Job, token: str) -> bool:
    """Queued, or already processing under `token`: a claim retried after its reply
    was lost takes the same jobs again (as on Redis)."""
    return job["status"] == "queued" or (
        job["status"] == "processing" and job.get("token") == token
    )
