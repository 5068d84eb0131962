"""Celery's prefork pool, with a fast start for fresh jobs (``-P`` of `picloud worker`).

A job's Celery message reaches a pool process through the worker's main process, which
costs a millisecond or more on top of the job store's own round trips. Every published
chunk also pushes a wake-up token (``pc:wake:<type>``), so an idle pool process of this
pool waits on two things at once: its pipe from the main process, as Celery's does, and
the wake-up list. Woken, it takes the fresh chunk as a thief would (`runner.stealing`),
claiming its jobs atomically, and runs them; the chunk's message, when it arrives,
finds them claimed and runs nothing. Every job still has its Celery task.

It is off unless ``PICLOUD_FAST_START=1`` (the ``fast_start`` setting), and then only
in the shared mode's pool processes (an executor serves one tenant, and chunks of an
environment are never taken this way), and it pauses while the worker drains and while
task events are on (Flower watching: then every job runs in its own Celery task, as
Flower shows it). What it costs, and why it is not the default: Celery's main process
counts a process as busy only while it runs a Celery task, so a message it hands to a
process busy with a job it took itself waits for that job (the process takes no more
once that happens), though another may be idle; Flower shows such a job's task as a
success that ran nothing; and a worker stopped at that moment may wait for billiard's
30 s message check before it exits.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable
from typing import Any

from celery.concurrency import asynpool, prefork

log = logging.getLogger("picloud.worker")


class FastStartWorker(asynpool.Worker):
    """A pool process that also takes fresh jobs while it waits for Celery's."""

    def _make_child_methods(self, *args: Any, **kwargs: Any) -> None:
        super()._make_child_methods(*args, **kwargs)
        from picloud_compat.settings import Settings

        if Settings.load().fast_start:
            self.wait_for_job = _waiting_for_both(self.wait_for_job, self.inq._reader, self)


def _waiting_for_both(
    receive: Callable[[], Any], reader: Any, worker: FastStartWorker
) -> Callable[[], Any]:
    """`receive` (billiard's wait for a task), which, while nothing arrives, runs fresh
    jobs the wake-up list announces."""
    from picloud_compat.runner.fast_start import waker
    from picloud_compat.runner.hygiene import RECYCLE_EXIT, ProcessDamaged

    def wait_for_job() -> Any:
        if worker._shutdown is not None and worker._shutdown.is_set():
            return receive()  # billiard's own exit path
        wake = waker()
        if wake is None:
            return receive()
        try:
            ready, _, _ = select.select([reader.fileno(), *wake.filenos()], [], [], 1.0)
            if not ready:
                return None
            if reader.fileno() in ready:
                return receive()
            # stop taking more once Celery hands this process a task
            wake.run_fresh(lambda: bool(select.select([reader.fileno()], [], [], 0)[0]))
        except ProcessDamaged as exc:  # as a task would: leave, and a fresh process comes
            log.warning("replacing this pool process: %s", exc)
            raise SystemExit(RECYCLE_EXIT) from exc
        except Exception as exc:  # the wake-up connection: wait as Celery's pool does
            wake.broken(exc)
        return None

    return wait_for_job


MAINTAIN_EVERY = 0.5
"""Seconds between the pool's checks for exited processes (Celery's: 5 s)."""


class FastStartPool(asynpool.AsynPool):
    """Celery's asynchronous prefork pool of `FastStartWorker` processes.

    It looks for exited processes every `MAINTAIN_EVERY` seconds: a lost process is
    reported (and its jobs recovered, with the exit's cause: `tasks.run`) only at such a
    check after ``worker_lost_wait``, so Celery's 5 s made that 1 to 6 s."""

    Worker = FastStartWorker

    @property
    def timers(self) -> dict[Callable[[], Any], float]:
        return {self.maintain_pool: MAINTAIN_EVERY}


class TaskPool(prefork.TaskPool):
    """``-P picloud_compat.workers.pool:TaskPool``."""

    Pool = FastStartPool
