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

Lingering: when nothing offered is queued at all, the thief waits a few milliseconds
(``steal_linger``) for a wake-up token (`runner.wake_ups`) before it goes back to
Celery. A program that calls and waits in a loop submits its next job within a
millisecond of the last result, and a lingering process starts it without the trip
through the worker's main process. It lingers only then: offered jobs that only their
message runs (a big unstarted chunk) send it back at once, so a message never waits on
a lingering process that has nothing to do, beyond the linger itself when it was
published just after the look. Nor does it linger while Flower watches (task events
on), so that Flower shows each call's job in that call's task.

Right after outcomes: a chunk's end (its last outcomes) rides with the thief's next
steal, one round trip for both. When that steal finds nothing, the thief looks once
more at once before it lingers: whoever waited for those outcomes (a call -> result
loop) submits its next job within about that round trip, and a steal already on its
way starts it sooner than a wake-up would (measured: W2's p50 0.39x raw Celery with a
separate end and steal, 0.45x with them merged and no second look).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from picloud_compat.errors import ConnectionFailed
from picloud_compat.runner.chunk import ChunkRunner
from picloud_compat.runner.recording import MAX_BATCH_BYTES
from picloud_compat.store.records import ChunkRef, Claim, Settlement, StealMiss

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
        self,
        compute_types: Sequence[str],
        worker: str,
        warden: str,
        token: str,
        max_bytes: int,
        settle: Settlement | None = None,
    ) -> tuple[ChunkRef, Claim] | StealMiss:
        """An offered chunk with queued jobs, the first of its back half claimed for
        `worker` under `token`; else why there is none. `settle` (the thief's previous
        chunk) is recorded and ended first, in the same round trip."""
        ...


class WakeUpSource(Protocol):
    """Where a lingering thief hears of fresh work (`runner.wake_ups`)."""

    def wait(self, seconds: float) -> bool:
        """Whether a wake-up token arrives within `seconds`."""
        ...


class Thief:
    """Runs jobs of offered chunks in a process that has finished its own."""

    def __init__(
        self,
        store: StealingStore,
        served: Sequence[str],
        draining: Callable[[], bool],
        wake_ups: Callable[[], WakeUpSource | None] = lambda: None,
        linger: float = 0.0,
        watched: Callable[[], bool] = lambda: False,
    ) -> None:
        """`served`: the compute types of the worker (only their jobs are taken);
        `wake_ups()`: this process's wake-up source, made on first linger; `linger`:
        seconds to wait for fresh work when nothing is queued (see module doc), except
        while `watched()` (task events on: Flower should see each job in its own task)."""
        self._store = store
        self._served = list(served)
        self._draining = draining
        self._wake_ups = wake_ups
        self._linger = linger
        self._watched = watched

    def take(
        self,
        runner: ChunkRunner,
        compute_type: str,
        interrupted: Callable[[], bool] = lambda: False,
        linger: bool = True,
    ) -> tuple[int, list[tuple[int, str]]]:
        """Run stolen jobs until none is left (or `interrupted()`): (jobs run, those
        that failed). With `linger`, wait a little for fresh work before giving up."""
        try:
            return self._take(runner, compute_type, interrupted, linger)
        finally:
            runner.settle()  # what no steal carried (the last chunk's end, or any left)

    def _take(
        self,
        runner: ChunkRunner,
        compute_type: str,
        interrupted: Callable[[], bool],
        linger: bool,
    ) -> tuple[int, list[tuple[int, str]]]:
        served = self._served or ([compute_type] if compute_type else [])
        ran: int = 0
        failed: list[tuple[int, str]] = []
        idle_since = time.monotonic()
        for _ in range(STEALS_PER_MESSAGE if served else 0):
            if self._draining() or interrupted():
                break
            token = secrets.token_hex(8)
            identity = runner.identity
            settle = runner.unsettled  # the last chunk's end rides with this steal
            try:
                found = self._store.steal(
                    served, identity.worker, identity.warden, token, MAX_BATCH_BYTES, settle
                )
            except ConnectionFailed:
                log.debug("no stealing while the store is unreachable", exc_info=True)
                break
            except Exception:
                if settle is None:
                    raise
                runner.settle()  # the store refused what it carried: the careful way
                continue
            runner.unsettled = None
            if isinstance(found, StealMiss):
                if found is StealMiss.QUIET and settle is not None:
                    continue  # look again at once: see "Right after outcomes" above
                if found is StealMiss.QUIET and linger and self._fresh_work(idle_since):
                    continue
                break
            chunk, claim = found
            ran += runner.run(chunk, (token, claim), settle_later=True)
            failed += runner.failed
            idle_since = time.monotonic()
        return ran, failed

    def _fresh_work(self, idle_since: float) -> bool:
        """Whether a wake-up comes before the linger since `idle_since` runs out."""
        left = idle_since + self._linger - time.monotonic()
        if left <= 0 or self._draining() or self._watched():
            return False
        source = self._wake_ups()
        return source is not None and source.wait(left)
