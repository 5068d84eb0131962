"""A pool process's watch on the wake-up lists while it waits for Celery (`workers.pool`).

Every published chunk pushes a token onto its compute type's wake-up list (``offer`` in
``lua/lib.lua``). An idle pool process keeps one BLPOP outstanding on the lists of the
types its worker serves, on a connection of its own, and its wait for Celery's pipe
also watches that socket. A token wakes one process, which then takes fresh chunks as a
thief does (`runner.stealing`): the token is only a hint, and the claims decide.

The connection is used for nothing else, so a BLPOP may stay outstanding across the
tasks Celery gives the process meanwhile: a token that arrived then is simply read on
the next idle wait, and costs one look for work that has been taken already. Should the
connection fail, the process goes on as a plain Celery pool process for a while.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from picloud_compat.runner import process
from picloud_compat.runner.state_file import DRAIN_MARKER, TASK_EVENTS_MARKER
from picloud_compat.runner.stealing import served_types
from picloud_compat.store import keys

log = logging.getLogger("picloud.runner")

BLPOP_SECONDS = 30
"""A blocking pop outstanding this long is renewed (so a dead connection is noticed)."""
RETRY_AFTER = 5.0
"""Seconds a process waits like a plain Celery one after its wake-up connection failed."""


class Waker:
    """One pool process's wake-up connection and what a wake-up does."""

    def __init__(self, job_process: process.JobProcess, served: list[str]) -> None:
        from picloud_compat.store.redis.connection import connect

        self._job_process = job_process
        settings = job_process.settings
        client = connect(settings.server_url or "", settings)
        self._connection: Any = client.connection_pool.make_connection()
        self._lists = [keys.wake(queue) for queue in served]
        self.state_dir = job_process.identity.state_dir
        self._pending = False
        self.failed_at = 0.0

    def filenos(self) -> list[int]:
        """The socket to watch (a blocking pop is sent first if none is outstanding)."""
        if not self._pending:
            self._connection.send_command("BLPOP", *self._lists, BLPOP_SECONDS)
            self._pending = True
        return [self._connection._sock.fileno()]

    def run_fresh(self, interrupted: Callable[[], bool]) -> None:
        """The socket is readable: read the pop's reply, and if a token came, run what
        fresh work there is (until none is left, or `interrupted()`)."""
        token = self._connection.read_response()
        self._pending = False
        if token is not None:
            self._job_process.take_work(interrupted)

    def close(self) -> None:
        self._connection.disconnect()


_waker: Waker | None = None
_checked_pid = 0


def waker() -> Waker | None:
    """This pool process's waker; None where it does not apply (tenant isolation, a
    store other than Redis) or while its connection recovers from a failure."""
    global _waker, _checked_pid
    pid = os.getpid()
    if _checked_pid != pid:  # first call in this process (a fork never inherits one)
        _checked_pid, _waker = pid, None
        try:
            job_process = process.celery_job_process()
            served = served_types()
            if isinstance(job_process, process.JobProcess) and served:
                _waker = Waker(job_process, served)
        except Exception:
            log.exception("no fast start in this pool process")
    if _waker is None or time.monotonic() - _waker.failed_at < RETRY_AFTER:
        return None
    state_dir = _waker.state_dir
    if state_dir is not None and (
        (state_dir / DRAIN_MARKER).exists() or (state_dir / TASK_EVENTS_MARKER).exists()
    ):
        return None  # draining, or Flower watching: every job in its own Celery task
    return _waker


def broken(exc: BaseException) -> None:
    """The wake-up connection failed: wait like a plain pool process for a while."""
    if _waker is not None:
        log.warning("fast start paused: %s", exc)
        _waker.failed_at = time.monotonic()
        _waker._pending = False
        _waker.close()
