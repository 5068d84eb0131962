"""Work stealing: a job process that finished its chunk takes jobs of others.

A chunk runs in one process from its first job on. When a job of it is slow, the jobs
behind it wait, while at the end of a map (or beside uneven chunks) other processes sit
idle, and every chunk costs a Celery round trip through the worker's main process
before it starts. So a process that has finished its chunk takes the back half of the
queued jobs of the first offered chunk of the types it serves (priority, then age:
`store.redis.stealing`), again and again, before it goes back to Celery. A chunk's
message that arrives after thieves emptied it finds nothing left to run.

The thief runs stolen jobs as an ordinary runner of that chunk (its own claims, lease
and outcomes), so kills, leases, recovery and draining work as for any chunk. Only jobs
that run in the pool process itself are stolen (the shared mode, no ``_env``): an
executor serves one tenant and one environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

from picloud_compat.errors import ConnectionFailed
from picloud_compat.runner.chunk import MAX_BATCH_BYTES, ChunkRunner
from picloud_compat.store.records import ChunkRef, Claim

log = logging.getLogger("picloud.runner")

STEALS_PER_MESSAGE = 64
"""Chunks stolen before the process goes back to Celery, so its message is acknowledged
and monitoring moves on even while there is always something to steal."""
QUEUES_ENV = "PICLOUD_WORKER_QUEUES"
"""Set by the worker's main process before forking: the queues (compute types) it serves."""


def served_types() -> list[str]:
    """The compute types this worker serves (`QUEUES_ENV`), in a pool process."""
    return [q for q in os.environ.get(QUEUES_ENV, "").split(",") if q]


class StealingStore(Protocol):
    """The store's side of work stealing."""

    def steal(
        self, compute_types: Sequence[str], worker: str, warden: str, token: str, max_bytes: int
    ) -> tuple[ChunkRef, Claim] | None:
        """An offered chunk with queued jobs, the first of its back half claimed for
        `worker` under `token`; None if there is none."""
        ...


class Thief:
    """Runs jobs of offered chunks in a process that has finished its own."""

    def __init__(
        self, store: StealingStore, served: Sequence[str], draining: Callable[[], bool]
    ) -> None:
        """`served`: the compute types of the worker (only their jobs are taken)."""
        self._store = store
        self._served = list(served)
        self._draining = draining

    def take(
        self,
        runner: ChunkRunner,
        compute_type: str,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> tuple[int, list[tuple[int, str]]]:
        """Run stolen jobs until none is left (or `interrupted()`): (jobs run, those
        that failed)."""
        served = self._served or ([compute_type] if compute_type else [])
        ran: int = 0
        failed: list[tuple[int, str]] = []
        for _ in range(STEALS_PER_MESSAGE if served else 0):
            if self._draining() or interrupted():
                break
            token = secrets.token_hex(8)
            identity = runner.identity
            try:
                found = self._store.steal(
                    served, identity.worker, identity.warden, token, MAX_BATCH_BYTES
                )
            except ConnectionFailed:
                log.debug("no stealing while the store is unreachable", exc_info=True)
                break
            if found is None:
                break
            chunk, claim = found
            ran += runner.run(chunk, (token, claim))
            failed += runner.failed
        return ran, failed
