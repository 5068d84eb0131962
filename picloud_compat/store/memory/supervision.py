"""`SupervisionStore` in memory: the simulator sees its processes die directly, so
leases and reaping have nothing to do; recovery is the same as on Redis."""

from __future__ import annotations

import time
from collections.abc import Sequence

from picloud_compat.config.compute_types import (
    COMPUTE_TYPES,
    DEFAULT_TYPE,
    PRIORITY_STEPS,
    priority_step,
)
from picloud_compat.jobspec import JobSpec
from picloud_compat.status import FINISHED
from picloud_compat.store.memory.state import MemoryState
from picloud_compat.store.records import (
    RUNTIME_BUCKETS,
    ChunkRef,
    ClusterMetrics,
    KillRequest,
    WorkerInfo,
    WorkerLoss,
)


class MemorySupervision(MemoryState):
    """What the simulator's warden does."""

    def pop_kill_requests(self, warden: str, timeout: float) -> list[KillRequest]:
        """Block up to `timeout` for kill requests (the simulator has one warden)."""
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

    def renew_leases(self, chunks: Sequence[tuple[ChunkRef, str]], ttl: float) -> None:
        """Nothing to do: the simulator sees its processes die directly."""

    def reap(self, now: float) -> list[str]:
        """Nothing to do: no message can be lost between the simulator's processes."""
        return []

    def hand_back(self, chunk: ChunkRef, worker: str) -> WorkerLoss:
        """Republish what a draining runner left of `chunk` (see the contract)."""
        return self.recover(chunk, worker, "worker lost: it shut down mid-job")

    def recover(self, chunk: ChunkRef, dead_worker: str, reason: str) -> WorkerLoss:
        """Requeue or fail the jobs a dead worker held; republish the chunk."""
        t = chunk.tenant
        loss = WorkerLoss()
        with self._lock:
            for jid in chunk.jids:
                job = self._jobs.get((t, jid))
                if not job or job["status"] != "processing" or job.get("worker") != dead_worker:
                    continue
                doc = self._specs.get((t, job["opts"]))
                restartable = JobSpec.from_json(doc).restartable if doc else True
                if restartable and job["att"] < self.settings.max_attempts:
                    self._move(job, jid, "queued")
                    for f in ("worker", "warden", "token", "started"):
                        job.pop(f, None)
                    loss.requeued += 1
                else:
                    why = (
                        reason if not restartable else f"{reason} (worker lost {job['att']} times)"
                    )
                    self._fail(t, jid, "error", why)
                    loss.errored += 1
            if loss.requeued or loss.errored:
                self._kill_generations[dead_worker] += 1
                self._stats["requeued"] += loss.requeued
                self._stats["lost"] += loss.errored
            statuses = [self._jobs[(t, j)]["status"] for j in chunk.jids if (t, j) in self._jobs]
            if "queued" in statuses and chunk.key in self._ledger:
                self._enqueue(chunk, self._ledger[chunk.key])
                loss.republished = True
            elif all(s in FINISHED for s in statuses):
                self._ledger.pop(chunk.key, None)
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
                    single = ChunkRef(t, jid, 1)
                    chunks.add(single)
                    self._ledger.setdefault(single.key, 0)
            for chunk in chunks:
                total.add(self.recover(chunk, dead_worker, reason))
        return total

    def heartbeat(self, info: WorkerInfo) -> None:
        """Register (or refresh) a live worker."""
        with self._lock:
            self._workers[info.name] = info

    def forget_worker(self, name: str) -> None:
        """A worker shut down cleanly."""
        with self._lock:
            self._workers.pop(name, None)

    def live_workers(self) -> list[WorkerInfo]:
        """Registered workers."""
        with self._lock:
            return list(self._workers.values())

    def metrics(self) -> ClusterMetrics:
        """The simulator's figures, shaped as Redis's (backlog by the chunks' own type)."""
        with self._lock:
            backlog = {(name, step): 0 for name in COMPUTE_TYPES for step in PRIORITY_STEPS}
            for priority, _, chunk in (e for q in self._queues.values() for e in q):
                job = self._jobs.get((chunk.tenant, chunk.first), {})
                doc = self._specs.get((chunk.tenant, job.get("opts", "")))
                kind = JobSpec.from_json(doc).type if doc else DEFAULT_TYPE
                key = (kind, priority_step(priority))
                backlog[key] = backlog.get(key, 0) + 1
            stats = dict(self._stats)
            in_flight = sum(len(chunks) for chunks in self._held.values())
        count = len(RUNTIME_BUCKETS) + 1
        return ClusterMetrics(
            backlog=backlog,
            in_flight=in_flight,
            workers=self.live_workers(),
            finished={
                k.split(":", 1)[1]: int(v) for k, v in stats.items() if k.startswith("finished:")
            },
            runtime_buckets=[int(stats.get(f"runtime:{i}", 0)) for i in range(1, count + 1)],
            runtime_sum=stats.get("runtime_sum", 0.0),
            requeued=int(stats.get("requeued", 0)),
            lost=int(stats.get("lost", 0)),
        )
