"""Every change of a job's state on Redis: each method is one Lua script (``lua/``).

Submit, claim, finish, unclaim, kill, delete and watch are the atomic steps of a job's
life (advance is finish then claim, in one round trip); their scripts share
``lua/lib.lua`` (notices, dependency release and stalls, the chunk ledger). Reads are in
`reads.py`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions as rexc

from picloud_compat.config.compute_types import queue_key
from picloud_compat.errors import CloudException
from picloud_compat.messages import chunk_template
from picloud_compat.store import keys
from picloud_compat.store.records import (
    MAX_JID,
    ChunkRef,
    Claim,
    ClaimedJob,
    Outcome,
    Submission,
    storable,
    utc_day,
)
from picloud_compat.store.redis import scripts
from picloud_compat.store.redis.arguments import (
    AdvanceArgs,
    AppendOutputArgs,
    ClaimArgs,
    FinishArgs,
    KillArgs,
    SubmitArgs,
    TenantArgs,
    UnclaimArgs,
    WatchArgs,
)
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import (
    INLINE_ARGS,
    as_blob,
    store_errors,
)

PENDING_ARGS_TTL = 3600
"""TTL of big arguments written just before their submit script runs."""


def lease_member(chunk: ChunkRef, worker: str) -> str:
    """The lease hash's member for `chunk` run by `worker` (score: lease expiry)."""
    return f"{chunk.key}|{worker}"


def outcome_values(outcomes: Sequence[Outcome]) -> list[Any]:
    """finish.lua's trailing arguments: 13 values per outcome."""
    values: list[Any] = []
    for o in outcomes:
        values += [
            o.jid,
            o.token,
            o.status,
            o.result or b"",
            storable(o.exception or ""),
            storable(o.stdout),
            storable(o.stderr),
            storable(o.profile or ""),
            repr(o.runtime),
            repr(o.cpu_user),
            repr(o.cpu_system),
            o.memory_peak,
            o.memory_failcnt,
        ]
    return values


def claimed(client: redis.Redis, chunk: ChunkRef, reply: list[Any]) -> Claim:
    """claim.lua's reply (also the tail of steal.lua's) as a Claim, big arguments fetched."""
    claim = Claim(int(reply[0]), kill_generation=int(reply[1]))
    # (jid, attempt, spec id, args) per job; args are nil when kept in their own key.
    rows = [reply[i : i + 4] for i in range(2, len(reply), 4)]
    big = [int(row[0]) for row in rows if row[3] is None]
    fetched: dict[int, bytes] = {}
    if big:
        with store_errors("fetching arguments"):
            blobs = client.mget([keys.args(chunk.tenant, jid) for jid in big])
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


class RedisJobs(RedisBase):
    """The job-life state changes: `ClientStore` and `RunnerStore` writes."""

    def allocate(self, t: str, count: int) -> int:
        """Reserve `count` consecutive jids for tenant `t`; return the first."""
        if not (_is_count(count)):
            raise CloudException(f"allocate 1 to {MAX_ALLOCATE} jids at a time, not {count!r}")
        with store_errors("allocating jids"):
            last = int(self.redis.incrby(keys.jid_counter(t), count))
        if last >= MAX_JID:
            raise CloudException(f"API key {t} has used up its jids (they stay below {MAX_JID})")
        return last - count + 1

    def submit(self, t: str, sub: Submission) -> int:
        """Create the jobs atomically and queue their chunks; return the first jid."""
        s = self.settings
        # Big arguments bypass Lua (copying megabytes through Lua strings is slow): they
        # are SET with a TTL in the same MULTI and made persistent by the script, so a
        # failed submit leaves nothing behind for long.
        external = any(len(a) > INLINE_ARGS for a in sub.args)
        first = sub.first
        if external and first is None:
            first = self.allocate(t, len(sub.args))
        fn = sub.fn_blob or b""  # b"": the store has it already
        sizes = sub.chunk_sizes()
        record: SubmitArgs = {
            "tenant": t,
            "now": time.time(),
            "cid": sub.cid,
            "first": first,
            "count": len(sub.args),
            "spec_id": sub.spec_id,
            "spec": sub.spec_json,
            "fn_sha": sub.fn_sha,
            "retention": s.retention_seconds,
            "queue": queue_key(sub.queue, sub.priority),
            "chunks": list(sizes),
            "templates": {
                str(size): chunk_template(
                    t, size, sub.queue, sub.priority, sub.display_name, sub.label, sub.env
                )
                for size in set(sizes)
            },
            "deperr": sub.depends_on_errors,
            "parent": sub.parent,
            "inline_limit": s.inline_result_limit,
            "args_stored": external,
        }
        if not external:
            return int(self._run("submit", record, [fn, *sub.depends_on, *sub.args], "submitting"))
        assert first is not None
        script = self._scripts["submit"]
        with store_errors("submitting jobs"):
            for loaded in (False, True):  # queued by sha: on NoScript, loaded and resent
                pipe = self.redis.pipeline(transaction=True)
                for i, blob in enumerate(sub.args):
                    pipe.set(keys.args(t, first + i), blob, ex=PENDING_ARGS_TTL)
                scripts.queue_call(pipe, script, record, [fn, *sub.depends_on])
                reply = pipe.execute(raise_on_error=False)[-1]
                if loaded or not isinstance(reply, rexc.NoScriptError):
                    break
                # the script did not run (the SETs did, with their TTL: written again)
                scripts.reload(self.redis, script)
        if isinstance(reply, rexc.ResponseError):
            with store_errors("submitting jobs"):
                scripts.raise_script_error(reply)
        if isinstance(reply, Exception):
            raise reply
        return int(reply)

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
        record = self._claim_args(chunk, start, max_jobs, max_bytes, worker, warden, token)
        return claimed(self.redis, chunk, self._run("claim", record, (), "claiming jobs"))

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
        record: FinishArgs = {
            "tenant": chunk.tenant,
            "now": time.time(),
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
            "output_limit": s.output_limit,
            "day": utc_day(),
            "ending": (2 if ran_all else 1) if end else 0,
            "lease": lease_member(chunk, worker),
            "first": chunk.first,
            "count": chunk.count,
        }
        self._run("finish", record, outcome_values(outcomes), "recording results")

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
        """`finish` then `claim` in one script; nothing left to claim ends the chunk."""
        claim = self._claim_args(chunk, start, max_jobs, max_bytes, worker, warden, token)
        record: AdvanceArgs = {
            **claim,
            "output_limit": self.settings.output_limit,
            "day": utc_day(),
        }
        reply = self._run("advance", record, outcome_values(outcomes), "recording results")
        return claimed(self.redis, chunk, reply)

    def _claim_args(
        self,
        chunk: ChunkRef,
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> ClaimArgs:
        now = time.time()
        s = self.settings
        return {
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

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        """Give back claimed jobs that never started."""
        if jids:
            record: UnclaimArgs = {"tenant": chunk.tenant, "token": token}
            self._run("unclaim", record, jids, "returning jobs")

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        """Stream a running job's output (only the tail is kept)."""
        if stdout or stderr:
            record: AppendOutputArgs = {
                "tenant": t,
                "jid": jid,
                "limit": self.settings.output_limit,
                "stdout": storable(stdout),
                "stderr": storable(stderr),
            }
            self._run("append_output", record, (), "streaming output")

    def kill(self, t: str, jids: Sequence[int] | None, reason: str = "Killed") -> list[int]:
        """Kill unfinished jobs (all of the tenant's if None); return those killed."""
        if jids is not None and not jids:
            return []
        s = self.settings
        record: KillArgs = {
            "tenant": t,
            "now": time.time(),
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
            "reason": reason,
            "all": jids is None,
        }
        return [int(j) for j in self._run("kill", record, jids or (), "killing jobs")]

    def delete(self, t: str, jids: Sequence[int]) -> None:
        """Remove finished jobs' data, all or nothing."""
        if jids:
            record: TenantArgs = {"tenant": t}
            self._run("delete", record, jids, "deleting jobs")

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        """Register for notices about other clients' jobs; current statuses."""
        if not jids:
            return []
        record: WatchArgs = {"tenant": t, "cid": cid}
        reply = self._run("watch", record, jids, "watching jobs")
        return [None if not v else v.decode() for v in reply]


MAX_ALLOCATE = 10_000_000
"""Jids one allocation may reserve (a map of ten million jobs)."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ALLOCATE
