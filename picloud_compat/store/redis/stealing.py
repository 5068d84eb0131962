"""Work stealing on Redis: job processes take queued jobs of other chunks.

A chunk is one Celery message, run by one pool process from its first job on. When one
of its jobs is slow, the jobs behind it wait while other processes may sit idle (the
last chunks of a map, chunks of uneven jobs), and every message costs a trip through
the worker's main process before it starts. So every published chunk is also offered
(`offer` in ``lua/lib.lua``), and a process that finished its chunk takes the back half
of the queued jobs of the first offered chunk (or all of a small one not started yet),
in the queues' order (priority, then age), claiming the first of them in the same round
trip. It claims the rest through the
ordinary claim script, under its own lease on the chunk, so recovery and the ledger
treat it like any runner of the chunk, and each job is claimed once; the chunk's
message, when it arrives, runs what is left.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from picloud_compat.store.records import ChunkRef, Claim, Settlement, StealMiss, utc_day
from picloud_compat.store.redis.arguments import StealArgs
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.jobs import claimed, lease_member, outcome_values

STEAL_PROBES = 16
"""About how many jobs of an offered chunk a steal looks at (bounds its Redis time)."""
WHOLE_CHUNK = 32
"""The most jobs an unstarted chunk may have to be taken whole (see ``lua/steal.lua``)."""


class RedisStealing(RedisBase):
    """Taking jobs of offered chunks (see module doc)."""

    def steal(
        self,
        compute_types: Sequence[str],
        worker: str,
        warden: str,
        token: str,
        max_bytes: int,
        settle: Settlement | None = None,
    ) -> tuple[ChunkRef, Claim] | StealMiss:
        """The first offered chunk of `compute_types` with queued jobs (and no
        environment), with the first job of its back half claimed for `worker` under
        `token` (the claim's `next_index` is where the thief goes on); else why not.
        `settle` (the previous chunk `worker` ran) is recorded and ended first, as
        `finish` with `end` would."""
        now = time.time()
        s = self.settings
        record: StealArgs = {
            "types": list(compute_types),
            "whole": WHOLE_CHUNK,
            "probes": STEAL_PROBES,
            "now": now,
            "worker": worker,
            "warden": warden,
            "token": token,
            "lease_until": now + s.lease_seconds,
            "max_bytes": max_bytes,
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
        }
        rest: list[Any] = []
        if settle is not None:
            record["settle"] = {
                "tenant": settle.chunk.tenant,
                "first": settle.chunk.first,
                "count": settle.chunk.count,
                "lease": lease_member(settle.chunk, worker),
                "ran_all": settle.ran_all,
                "output_limit": s.output_limit,
                "day": utc_day(),
            }
            rest = outcome_values(settle.outcomes)
        reply = self._run("steal", record, rest, "looking for work to steal")
        if not isinstance(reply, list):
            return StealMiss.PENDING if reply else StealMiss.QUIET
        key = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        chunk = ChunkRef.parse(key)
        return chunk, claimed(self.redis, chunk, reply[1:])
