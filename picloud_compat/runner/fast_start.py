"""The opt-in fast start: an idle pool process also waits for wake-up tokens (`workers.pool`).

An idle pool process keeps its wake-up pop outstanding (`runner.wake_ups`), and its wait
for Celery's pipe also watches that socket. A token wakes one process, which then takes
fresh chunks as a thief does (`runner.stealing`). It pauses while the worker drains and
while task events are on (Flower watching: every job then runs in its own Celery task).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from picloud_compat.runner import process
from picloud_compat.runner.state_file import DRAIN_MARKER, TASK_EVENTS_MARKER
from picloud_compat.runner.stealing import served_types
from picloud_compat.runner.wake_ups import WakeUps, process_wake_ups

log = logging.getLogger("picloud.runner")


class Waker:
    """What a wake-up does in an idle pool process."""

    def __init__(self, job_process: process.JobProcess, wake_ups: WakeUps) -> None:
        self._job_process = job_process
        self._wake_ups = wake_ups

    def filenos(self) -> list[int]:
        """The socket to watch beside Celery's pipe."""
        return self._wake_ups.filenos()

    def run_fresh(self, interrupted: Callable[[], bool]) -> None:
        """The socket is readable: read the pop's reply, and if a token came, run what
        fresh work there is (until none is left, or `interrupted()`)."""
        if self._wake_ups.read():
            self._job_process.take_work(interrupted)

    def broken(self, exc: BaseException) -> None:
        """The wake-up connection failed: wait like a plain pool process for a while."""
        log.warning("fast start paused: %s", exc)
        self._wake_ups.broken(exc)


def _wake_ups(job_process: process.JobProcess) -> WakeUps | None:
    return process_wake_ups(job_process.settings, served_types(), job_process.identity.worker)


def waker() -> Waker | None:
    """This pool process's waker; None where it does not apply (tenant isolation, a
    store other than Redis), while its connection recovers from a failure, while the
    worker drains and while Flower watches."""
    try:
        job_process = process.celery_job_process()
    except Exception:
        log.exception("no fast start in this pool process")
        return None
    if not isinstance(job_process, process.JobProcess):
        return None
    wake_ups = _wake_ups(job_process)
    if wake_ups is None or wake_ups.paused:
        return None
    state_dir = job_process.identity.state_dir
    if state_dir is not None and (
        (state_dir / DRAIN_MARKER).exists() or (state_dir / TASK_EVENTS_MARKER).exists()
    ):
        return None  # draining, or Flower watching: every job in its own Celery task
    return Waker(job_process, wake_ups)
