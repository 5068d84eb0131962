"""`RunnerStore` on Redis: claiming jobs, recording outcomes, streaming output."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef, Claim, ClaimedJob, Outcome
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import as_blob, store_errors


def lease_member(chunk: ChunkRef, worker: str) -> str:
    """The lease hash's member for `chunk` run by `worker` (score: lease expiry)."""
    return f"{chunk.key}|{worker}"


class RedisRunnerSide(RedisBase):
    """What job processes do; claim and finish are one script call each."""

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
        """Move queued jobs of `chunk` to processing under `token`; lease the chunk."""
        now = time.time()
        s = self.settings
        record = {
            "tenant": chunk.tenant,
            "now": now,
            "worker": worker,
            "warden": warden,
            "token": token,
            "lease": lease_member(chunk, worker),
            "lease_until": now + s.lease_seconds,
            "first": chunk.first,
            "count": chunk.count,
            "start": start,
            "max_jobs": max_jobs,
            "max_bytes": max_bytes,
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
        }
        reply = self._run("claim", record, (), "claiming jobs")
        claim = Claim(int(reply[0]))
        # (jid, attempt, spec id, args) per job; args are nil when kept in their own key.
        rows = [reply[i : i + 4] for i in range(1, len(reply), 4)]
        big = [int(row[0]) for row in rows if row[3] is None]
        fetched: dict[int, bytes] = {}
        if big:
            with store_errors("fetching arguments"):
                blobs = self.redis.mget([keys.args(chunk.tenant, jid) for jid in big])
            fetched = {jid: as_blob(blob) or b"" for jid, blob in zip(big, blobs, strict=True)}
        for jid, attempt, spec_id, args in rows:
            claim.jobs.append(
                ClaimedJob(
                    int(jid),
                    int(attempt),
                    spec_id.decode(),
                    fetched[int(jid)] if args is None else args,
                )
            )
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
        s = self.settings
        record = {
            "tenant": chunk.tenant,
            "now": time.time(),
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
            "output_limit": s.output_limit,
            "ending": (2 if ran_all else 1) if end else 0,
            "lease": lease_member(chunk, worker),
            "first": chunk.first,
            "count": chunk.count,
        }
        rest: list[Any] = []
        for o in outcomes:
            rest += [
                o.jid,
                o.token,
                o.status,
                o.result or b"",
                o.exception or "",
                o.stdout,
                o.stderr,
                o.profile or "",
                repr(o.runtime),
            ]
        self._run("finish", record, rest, "recording results")

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        """Give back claimed jobs that never started."""
        if jids:
            self._run("unclaim", {"tenant": chunk.tenant, "token": token}, jids, "returning jobs")

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        """Stream a running job's output (only the tail is kept)."""
        if stdout or stderr:
            record = {
                "tenant": t,
                "jid": jid,
                "limit": self.settings.output_limit,
                "stdout": stdout,
                "stderr": stderr,
            }
            self._run("append_output", record, (), "streaming output")
