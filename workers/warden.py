"""The warden: the supervisor process that can stop a job no matter what it is doing.

A job stuck in a C call holds the GIL, so nothing inside its own process can be relied
on to stop it. The warden is the process that owns the job processes (the Celery
worker's main process, or the simulator's parent). It reads each job process's state
file (written by `ChunkRunner`) and:

- kills a job on request: SIGSTOP the process, re-read its state, and only if it is
  still running *that attempt* of *that job* SIGKILL it and its children (so a kill can
  never hit the next job the process picked up), else SIGCONT;
- kills jobs that overrun ``_max_runtime`` (they end ``killed`` with the reason);
- names the chunks its processes hold, so their leases are renewed and a whole-worker
  crash is noticed when they lapse, while a job that starves its own threads is not
  mistaken for one.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from picloud_compat.runner.hygiene import kill_descendants
from picloud_compat.runner.state_file import ProcessState, read_state, worker_name
from picloud_compat.store.records import ChunkRef

log = logging.getLogger("picloud.warden")


class Warden:
    """Acts on the job processes whose state files are in `state_dir`."""

    def __init__(
        self, state_dir: Path, kill_with_reason: Callable[[str, int, str], object]
    ) -> None:
        self.state_dir = state_dir
        self._kill_with_reason = kill_with_reason
        self._lost: list[int] = []

    def running(self) -> list[ProcessState]:
        """State records of the live job processes this warden supervises.

        The file of a process that is gone is removed, and its pid kept for `lost`: what
        it held is recovered then (not only chunks of a Celery task: a nested job it was
        running, jobs it took while idle), or by the reaper once its leases lapse.
        """
        out = []
        for path in self.state_dir.iterdir():
            if not path.name.isdigit():
                continue  # not a state file (the drain marker)
            if not _alive(int(path.name)):
                path.unlink(missing_ok=True)
                self._lost.append(int(path.name))
                continue
            state = read_state(path)
            if state:
                out.append(state)
        return out

    def lost(self) -> list[int]:
        """Pids of job processes found gone since the last call."""
        lost, self._lost = self._lost, []
        return lost

    def leased_chunks(self) -> list[tuple[ChunkRef, str]]:
        """(chunk, worker) of every chunk a live job process holds."""
        return [
            (ChunkRef.parse(ck), worker_name(state.pid))
            for state in self.running()
            for ck in state.chunks
        ]

    def kill(self, tenant: str, jid: int, token: str) -> bool:
        """Stop the process running (tenant, jid) under `token`; True if one was killed.

        A parent helping a nested job runs in the same process: killing either kills the
        process, and the other is recovered like any job of a lost worker.
        """
        for state in self.running():
            for job in state.jobs:
                if (job.tenant, job.jid, job.token) == (tenant, jid, token):
                    return self._stop_verify_kill(state.path, job.pid, tenant, jid, token)
        return False

    def _stop_verify_kill(self, path: Path, pid: int, tenant: str, jid: int, token: str) -> bool:
        if not _descends_from_us(pid):
            return False  # the pid was reused by a process that is not ours
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        _wait_stopped(pid)
        state = read_state(path)
        jobs = state.jobs if state else ()
        if not any((j.tenant, j.jid, j.token) == (tenant, jid, token) for j in jobs):
            os.kill(pid, signal.SIGCONT)  # it moved on to another job meanwhile
            return False
        kill_descendants(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        log.info("killed job %s/%s (pid %s)", tenant, jid, pid)
        return True

    def enforce_max_runtime(self) -> None:
        """Kill jobs running longer than their ``_max_runtime``, saying why."""
        now = time.time()
        for state in self.running():
            for job in state.jobs:
                limit = job.max_runtime
                if limit and now - job.started > limit:
                    reason = f"Killed: exceeded _max_runtime of {limit / 60.0:g} minutes"
                    self._kill_with_reason(job.tenant, job.jid, reason)
                    self.kill(job.tenant, job.jid, job.token)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _wait_stopped(pid: int, patience: float = 0.1) -> None:
    """SIGSTOP is delivered asynchronously (a process running on another CPU stops a
    moment after `kill` returns): wait, briefly, until `pid` is stopped, so what its
    state file says is what it does."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
                return
        except psutil.Error:
            return
        time.sleep(0.0002)


def _descends_from_us(pid: int) -> bool:
    try:
        return any(p.pid == os.getpid() for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def kill_process_tree(pid: int) -> None:
    """SIGKILL `pid` and its descendants if it is ours (a draining worker's overdue job)."""
    if not _descends_from_us(pid):
        return
    kill_descendants(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
