"""Reading jobs on Redis: statuses, records, results, listings, workers.

Each method is one round trip (a pipeline or a single command); none changes a job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

from picloud_compat.config.compute_types import COMPUTE_TYPES, PRIORITY_STEPS, queue_key
from picloud_compat.store import keys
from picloud_compat.store.records import (
    OUTPUT_FIELDS,
    RECORD_FIELDS,
    RUNTIME_BUCKETS,
    ClusterMetrics,
    JobEntry,
    QueueService,
    WorkerInfo,
)
from picloud_compat.store.redis.arguments import TenantArgs
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import (
    as_blob,
    as_text,
    store_errors,
)

_FLOAT_FIELDS = {"created", "started", "finished", "runtime", "cputime.user", "cputime.system"}
_INT_FIELDS = {"attempts", "parent", "memory.max_usage", "memory.failcnt"}
WORKER_TIMEOUT = 10.0
"""A worker that has not registered for this long is considered gone."""
_CONCURRENCY_CACHE = 5.0


class RedisReads(RedisBase):
    """Read-side operations of `ClientStore` and `RunnerStore`."""

    _concurrency_cache: tuple[float, dict[str, QueueService]] | None = None

    _concurrency_lock = threading.Lock()

    def kill_generation(self, worker: str) -> int:
        """How often jobs `worker` held were taken from it (killed, recovered)."""
        with store_errors("reading the kill generation"):
            value = self.redis.get(keys.kill_generation(worker))
        return int(value or 0)

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        """Status per jid, None for unknown jids."""
        with store_errors("reading job status"):
            pipe = self.redis.pipeline(transaction=False)
            for jid in jids:
                pipe.hget(keys.job(t, jid), "status")
            return [None if v is None else v.decode() for v in pipe.execute()]

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[JobEntry | None]:
        """Requested record fields and outputs per jid, None for unknown jids."""
        record_fields = [f for f in fields if f in RECORD_FIELDS]
        if "status" not in record_fields:
            record_fields.append("status")
        outputs = [f for f in fields if f in OUTPUT_FIELDS]
        output_key = {"stdout": keys.stdout, "stderr": keys.stderr, "profile": keys.profile}
        with store_errors("reading job info"):
            pipe = self.redis.pipeline(transaction=False)
            for jid in jids:
                pipe.hmget(keys.job(t, jid), [RECORD_FIELDS[f] for f in record_fields])
                for f in outputs:
                    pipe.get(output_key[f](t, jid))
            replies = pipe.execute()
        out: list[JobEntry | None] = []
        step = 1 + len(outputs)
        for i in range(len(jids)):
            record = dict(zip(record_fields, replies[i * step], strict=True))
            if record["status"] is None:
                out.append(None)
                continue
            entry: JobEntry = {f: _decode(f, record[f]) for f in record_fields}
            for j, f in enumerate(outputs):
                raw = replies[i * step + 1 + j]
                entry[f] = None if raw is None else raw.decode(errors="replace")
            out.append(entry)
        return out

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        """Sealed result blobs (None if absent); small ones live in the job hash."""
        out: list[bytes | None] = []
        with store_errors("reading results"):
            for start in range(0, len(jids), 1000):
                batch = jids[start : start + 1000]
                pipe = self.redis.pipeline(transaction=False)
                for jid in batch:
                    pipe.hmget(keys.job(t, jid), "r", "rx")
                fields = pipe.execute()
                big = [jid for jid, (_, rx) in zip(batch, fields, strict=True) if rx]
                stored: dict[int, bytes | None] = {}
                if big:
                    blobs = self.redis.mget([keys.result(t, j) for j in big])
                    stored = dict(zip(big, map(as_blob, blobs), strict=True))
                out.extend(
                    stored.get(jid) if rx else r for jid, (r, rx) in zip(batch, fields, strict=True)
                )
        return out

    def spec(self, t: str, spec_id: str) -> str | None:
        """The JSON job spec a submission stored."""
        with store_errors("reading a job spec"):
            raw = self.redis.get(keys.options(t, spec_id))
        return None if raw is None else as_text(raw)

    def function(self, t: str, sha: str) -> bytes | None:
        """The sealed function blob."""
        with store_errors("reading a function"):
            return as_blob(self.redis.get(keys.function(t, sha)))

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        """(jid, status, spec id) of every job of the tenant (a SCAN: not a hot path)."""
        prefix = keys.job_prefix(t)
        found = []
        with store_errors("listing jobs"):
            for key in self.redis.scan_iter(match=keys.tenant_job_pattern(t), count=1000):
                found.append(int(as_text(key)[len(prefix) :]))
            found.sort()
            out = []
            for start in range(0, len(found), 1000):
                batch = found[start : start + 1000]
                pipe = self.redis.pipeline(transaction=False)
                for jid in batch:
                    pipe.hmget(keys.job(t, jid), "status", "opts")
                for jid, (status, sid) in zip(batch, pipe.execute(), strict=True):
                    if status is not None:
                        out.append((jid, status.decode(), (sid or b"").decode()))
        return out

    def last_jid(self, t: str) -> int:
        """The highest jid allocated to the tenant (0 if none)."""
        with store_errors("reading the jid sequence"):
            return int(self.redis.get(keys.jid_counter(t)) or 0)

    def arguments(self, t: str, jid: int) -> bytes | None:
        """A job's sealed arguments: in its record, or apart when they were big."""
        with store_errors("reading job arguments"):
            inline, apart = self.redis.hmget(keys.job(t, jid), "a", "ax")
            if apart:
                return as_blob(self.redis.get(keys.args(t, jid)))
        return as_blob(inline)

    def unfinished(self, t: str) -> list[int]:
        """Jids of the tenant's unfinished jobs."""
        record: TenantArgs = {"tenant": t}
        return sorted(int(j) for j in self._run("unfinished", record, (), "listing"))

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose warden registered within WORKER_TIMEOUT seconds."""
        now = time.time()
        with store_errors("reading worker registrations"):
            raw = self.redis.hgetall(keys.WORKERS)
        out = []
        for name, doc in raw.items():
            try:
                info = json.loads(doc)
                seen = float(info.get("seen", 0))
                worker = WorkerInfo(
                    as_text(name),
                    tuple(info["queues"]),
                    int(info["concurrency"]),
                    seen,
                    str(info.get("runtime", "")),
                    int(info.get("busy", 0)),
                    tuple(str(e) for e in info.get("envs", ())),
                )
            except (ValueError, KeyError, TypeError):
                continue
            if now - seen <= WORKER_TIMEOUT:
                out.append(worker)
        return out

    def metrics(self) -> ClusterMetrics:
        """One pipelined pass: queue lengths, leases, counters; then registrations."""
        lists = [(name, step) for name in COMPUTE_TYPES for step in PRIORITY_STEPS]
        with store_errors("reading metrics"):
            pipe = self.redis.pipeline(transaction=False)
            for name, step in lists:
                pipe.llen(queue_key(name, step))
            pipe.hlen(keys.LEASES)
            pipe.hgetall(keys.STATS)
            *lengths, in_flight, raw = pipe.execute()
        stats = {as_text(k): as_text(v) for k, v in raw.items()}
        buckets = [int(stats.get(f"runtime:{i}", 0)) for i in range(1, len(RUNTIME_BUCKETS) + 2)]
        return ClusterMetrics(
            backlog=dict(zip(lists, (int(n) for n in lengths), strict=True)),
            in_flight=int(in_flight),
            workers=self.live_workers(),
            finished={
                k.split(":", 1)[1]: int(v) for k, v in stats.items() if k.startswith("finished:")
            },
            runtime_buckets=buckets,
            runtime_sum=float(stats.get("runtime_sum", 0.0)),
            requeued=int(stats.get("requeued", 0)),
            lost=int(stats.get("lost", 0)),
        )

    def concurrency(self, queue: str) -> int:
        """Processes consuming `queue` (at least 2, so chunks stay small); cached 5 s."""
        return max(2, self.service(queue).processes)

    def service(self, queue: str) -> QueueService:
        """Live processes serving `queue` and their runtimes, from the registrations
        (cached 5 s: every submit asks)."""
        now = time.monotonic()
        with self._concurrency_lock:
            cached = self._concurrency_cache
            if cached is None or now - cached[0] > _CONCURRENCY_CACHE:
                per_queue: dict[str, QueueService] = {}
                for worker in self.live_workers():
                    for q in worker.queues:
                        known = per_queue.get(q, QueueService(0))
                        runtimes = set(known.runtimes) | ({worker.runtime} - {""})
                        per_queue[q] = QueueService(
                            known.processes + worker.concurrency,
                            tuple(sorted(runtimes)),
                            max(known.largest, worker.concurrency),
                            tuple(sorted({*known.environments, *worker.environments})),
                        )
                cached = self._concurrency_cache = (now, per_queue)
        return cached[1].get(queue, QueueService(0))


def _decode(name: str, raw: bytes | None) -> float | int | str | None:
    if raw is None:
        return None
    text = raw.decode(errors="replace")
    if name in _FLOAT_FIELDS:
        return float(text)
    if name in _INT_FIELDS:
        return int(text)
    return text
