"""Reading jobs in memory: statuses, records, results, notices, listings."""

from __future__ import annotations

import time
from collections.abc import Sequence

from picloud_compat.signing import RUNTIME
from picloud_compat.store.memory.state import MemoryState
from picloud_compat.store.records import (
    OUTPUT_FIELDS,
    RECORD_FIELDS,
    JobEntry,
    Notice,
    QueueService,
)


class MemoryReads(MemoryState):
    """Read-side operations, under the store's lock."""

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
                    if f in RECORD_FIELDS:
                        entry[f] = job.get(RECORD_FIELDS[f])
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

    def pop_notices(self, t: str, cid: str, timeout: float, wanted: int = 1) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`;
        with `wanted` > 1, until that many have come or one is not 'done'."""
        deadline = time.monotonic() + max(timeout, 0)
        key, held = (t, cid), wanted > 1
        with self._lock:
            box = self._notices[key]
            if not box:
                self._wait_for_notices(key, held, wanted, deadline)
            out = list(box)
            box.clear()
            return out

    def _wait_for_notices(
        self, key: tuple[str, str], held: bool, wanted: int, deadline: float
    ) -> None:
        """Wait (lock held) until a notice came for a plain pop, or the hold was released
        for a held one, or the deadline."""
        box = self._notices[key]
        if held:
            self._notice_holds[key] = wanted
        else:
            self._plain_pops[key] += 1

        def ready() -> bool:
            return bool(box) and not (held and key in self._notice_holds)

        try:
            while not ready() and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._notice_cond.wait(remaining)
        finally:
            if not held:
                self._plain_pops[key] -= 1
                if not self._plain_pops[key]:
                    del self._plain_pops[key]

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        """(jid, status, spec id) of every job of the tenant."""
        with self._lock:
            return sorted(
                (jid, job["status"], job["opts"])
                for (tt, jid), job in self._jobs.items()
                if tt == t
            )

    def last_jid(self, t: str) -> int:
        """The highest jid allocated to the tenant (0 if none)."""
        with self._lock:
            return self._counters.get(t, 0)

    def arguments(self, t: str, jid: int) -> bytes | None:
        """A job's sealed arguments, None if the job or its arguments are gone."""
        with self._lock:
            return self._args.get((t, jid)) if (t, jid) in self._jobs else None

    def unfinished(self, t: str) -> list[int]:
        """Jids of the tenant's unfinished jobs."""
        with self._lock:
            return sorted(self._unfinished[t])

    def concurrency(self, queue: str) -> int:
        """The simulator's process count (it serves every queue), at least 2 like Redis's."""
        return max(2, self.settings.processes)

    def service(self, queue: str) -> QueueService:
        """The simulator's processes serve every queue, in this very runtime."""
        return QueueService(self.settings.processes, (RUNTIME,), self.settings.processes)
