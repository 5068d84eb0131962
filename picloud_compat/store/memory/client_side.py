"""`ClientStore` in memory: the same semantics as the Lua scripts, under one lock."""

from __future__ import annotations

import time
from collections.abc import Sequence

from picloud_compat.errors import CloudException, InvalidCredentials, UnknownJobError
from picloud_compat.status import FINISHED, STALLED_MESSAGE
from picloud_compat.store.memory.state import Job, MemoryState
from picloud_compat.store.records import (
    OUTPUT_FIELDS,
    JobEntry,
    KillRequest,
    MissingFunction,
    Notice,
    Submission,
)

# record field -> job dict field (the Redis hash spells them the same)
RECORD = {
    "status": "status",
    "created": "created",
    "started": "started",
    "finished": "finished",
    "runtime": "runtime",
    "exception": "exc",
    "attempts": "att",
    "worker": "worker",
    "parent": "parent",
    "spec": "opts",
}


class MemoryClientSide(MemoryState):
    """Client-side operations of the simulator's store."""

    def allocate(self, t: str, count: int) -> int:
        """Reserve `count` consecutive jids for tenant `t`; return the first."""
        with self._lock:
            first = self._counters[t] + 1
            self._counters[t] += count
            return first

    def submit(self, t: str, sub: Submission) -> int:
        """Create the chunk's jobs atomically and queue them; return the first jid."""
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
            chunk = self._chunk_id(first, count)
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
        """Status per jid, None for unknown jids."""
        with self._lock:
            return [self._jobs[(t, j)]["status"] if (t, j) in self._jobs else None for j in jids]

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[JobEntry | None]:
        """Requested record fields and outputs per jid, None for unknown jids."""
        out: list[JobEntry | None] = []
        with self._lock:
            for jid in jids:
                job = self._jobs.get((t, jid))
                if job is None:
                    out.append(None)
                    continue
                entry: JobEntry = {"status": job["status"]}
                for f in fields:
                    if f in RECORD:
                        entry[f] = job.get(RECORD[f])
                    elif f in OUTPUT_FIELDS:
                        entry[f] = self._outputs.get((f, (t, jid)))
                out.append(entry)
        return out

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        """Sealed result blobs (None if absent)."""
        with self._lock:
            return [self._results.get((t, j)) for j in jids]

    def spec(self, t: str, spec_id: str) -> str | None:
        """The JSON job spec a submission stored."""
        with self._lock:
            return self._specs.get((t, spec_id))

    def function(self, t: str, sha: str) -> bytes | None:
        """The sealed function blob."""
        with self._lock:
            return self._functions.get((t, sha))

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

    def pop_notices(self, t: str, cid: str, timeout: float) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`."""
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
        """(jid, status, spec id) of every job of the tenant."""
        with self._lock:
            return sorted(
                (jid, job["status"], job["opts"])
                for (tt, jid), job in self._jobs.items()
                if tt == t
            )

    def unfinished(self, t: str) -> list[int]:
        """Jids of the tenant's unfinished jobs."""
        with self._lock:
            return sorted(self._unfinished[t])

    def concurrency(self, queue: str) -> int:
        """The simulator's process count (it serves every queue)."""
        return self.settings.processes
