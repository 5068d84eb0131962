"""`RunnerStore` in memory, plus the queue that simulator processes pull chunks from."""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence

from picloud_compat.store.memory.state import MemoryState
from picloud_compat.store.records import ChunkRef, Claim, ClaimedJob, Outcome


class MemoryRunnerSide(MemoryState):
    """What the simulator's job processes do (over `simulator.rpc`)."""

    def next_chunk(self, timeout: float, worker: str) -> ChunkRef | None:
        """Block up to `timeout` for the most urgent queued chunk (the simulator's
        broker). The chunk is held by `worker` until it ends, so a worker that dies
        before even claiming it does not lose it (see `recover_worker`)."""
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
        """Move queued jobs of `chunk` to processing under `token`."""
        t = chunk.tenant
        claim = Claim(start)
        taken = size = 0
        now = time.time()
        with self._lock:
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
                if job is not None and job["status"] == "queued":
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
                self._move(job, o.jid, o.status, finished=now, runtime=o.runtime)
                if o.result is not None:
                    self._results[(t, o.jid)] = o.result
                if o.exception:
                    job["exc"] = o.exception
                self._append(t, o.jid, "stdout", o.stdout)
                self._append(t, o.jid, "stderr", o.stderr)
                if o.profile:
                    self._outputs[("profile", (t, o.jid))] = o.profile
                self._unfinished[t].discard(o.jid)
                self._notify(t, o.jid, o.status, o.result)
                self._propagate(t, o.jid, o.status)
            if end:
                self._held[worker].discard(chunk)
                if self._chunk_finished(chunk):
                    self._ledger.pop(chunk.key, None)

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
            self._append(t, jid, "stdout", stdout)
            self._append(t, jid, "stderr", stderr)
