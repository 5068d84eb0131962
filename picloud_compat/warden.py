"""The warden: the supervisor process that can stop a job no matter what it is doing.

A job stuck in a C call holds the GIL, so nothing inside its own process can be relied
on to stop it. The warden is the process that owns the job processes (the Celery
worker's main process, or the simulator's parent). It reads each job process's state
file (written by `ChunkRunner`) and:

- kills a job on request: SIGSTOP the process, re-read its state, and only if it is
  still running *that attempt* of *that job* SIGKILL it and its children (so a kill can
  never hit the next job the process picked up), else SIGCONT;
- kills jobs that overrun ``_max_runtime`` (they end ``killed`` with the reason);
- renews the leases of running chunks, so a whole-worker crash is noticed when the
  leases lapse, while a job that starves its own threads is not mistaken for one.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from picloud_compat.runner import read_state
from picloud_compat.store.base import ChunkRef

log = logging.getLogger("picloud.warden")

KillRequest = tuple[str, int, str, str]  # tenant, jid, worker (host:pid), token


class Warden:
    def __init__(self, state_dir: Path, kill_with_reason: Callable[[str, int, str], Any]) -> None:
        self.state_dir = state_dir
        self._kill_with_reason = kill_with_reason

    def running(self) -> list[dict[str, Any]]:
        """State records of the live job processes this warden supervises.

        The file of a process that is gone is removed: its chunks' leases then lapse and
        the reaper recovers them (nothing else would: not a nested job it was running).
        """
        out = []
        for path in self.state_dir.iterdir():
            if not (path.name.isdigit() and _alive(int(path.name))):
                path.unlink(missing_ok=True)
                continue
            state = read_state(path)
            if state:
                state["_path"] = path
                out.append(state)
        return out

    def leased_chunks(self) -> list[tuple[ChunkRef, str]]:
        from picloud_compat.keys import parse_chunk_key
        from picloud_compat.runner import worker_name

        chunks = []
        for state in self.running():
            worker = worker_name(int(state["_path"].name))
            for ck in state["chunks"]:
                chunks.append((ChunkRef(*parse_chunk_key(ck)), worker))
        return chunks

    def kill(self, tenant: str, jid: int, token: str) -> bool:
        """Stop the process running (tenant, jid) under `token`; True if one was killed.

        A parent helping a nested job runs in the same process: killing either kills the
        process, and the other is recovered like any job of a lost worker.
        """
        for state in self.running():
            for job in state["jobs"]:
                if (job["tenant"], job["jid"], job["token"]) == (tenant, jid, token):
                    return self._stop_verify_kill(state["_path"], job["pid"], tenant, jid, token)
        return False

    def _stop_verify_kill(self, path: Path, pid: int, tenant: str, jid: int, token: str) -> bool:
        if not _descends_from_us(pid):
            return False  # the pid was reused by a process that is not ours
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        state = read_state(path) or {"jobs": []}
        if not any(
            (j["tenant"], j["jid"], j["token"]) == (tenant, jid, token) for j in state["jobs"]
        ):
            os.kill(pid, signal.SIGCONT)  # it moved on to another job meanwhile
            return False
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        log.info("killed job %s/%s (pid %s)", tenant, jid, pid)
        return True

    def enforce_max_runtime(self) -> None:
        now = time.time()
        for state in self.running():
            for job in state["jobs"]:
                limit = job["max_runtime"]
                if limit and now - job["started"] > limit:
                    reason = f"Killed: exceeded _max_runtime of {limit / 60.0:g} minutes"
                    self._kill_with_reason(job["tenant"], job["jid"], reason)
                    self.kill(job["tenant"], job["jid"], job["token"])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _descends_from_us(pid: int) -> bool:
    try:
        return any(p.pid == os.getpid() for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False
