"""The supervision loop: one for the Celery worker's main process and the simulator.

Every pass serves kill requests and ``_max_runtime``; every `HEARTBEAT_EVERY`
seconds it registers the worker, renews the leases of running chunks and runs one
reaper pass (`SupervisionStore.reap`). On the simulator the store makes leases and
reaping no-ops, and a `check` hook notices dead job processes directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from picloud_compat.config.celeryconfig import WORKER_LOST_WAIT
from picloud_compat.runner.state_file import worker_name
from picloud_compat.signing import RUNTIME
from picloud_compat.store.contract import SupervisionStore
from picloud_compat.store.records import ChunkRef, WorkerInfo
from picloud_compat.workers.warden import Warden, kill_process_tree

log = logging.getLogger("picloud.worker")

RUNTIME_SCAN_EVERY = 0.25
"""Seconds between ``_max_runtime`` checks (each reads every job process's state file)."""
HEARTBEAT_EVERY = 2.0
"""Seconds between worker registrations, lease renewals and reaper passes."""
LOST_GRACE = WORKER_LOST_WAIT + 3.0
"""Seconds a dead job process's jobs are left to Celery's own recovery, which names the
exit's cause (a task's failure hook, `tasks.run`): Celery reports a lost process at its
first pool check (`workers.pool.MAINTAIN_EVERY`) ``worker_lost_wait`` after it found it
gone."""


class Supervisor(threading.Thread):
    """Runs the supervision loop in a daemon thread until `stop()`."""

    def __init__(
        self,
        store: SupervisionStore,
        name: str,
        state_dir: Path,
        queues: Sequence[str],
        concurrency: int,
        lease_seconds: float,
        *,
        wait: float = 0.25,
        check: Callable[[], None] | None = None,
        environments: Sequence[str] = (),
    ) -> None:
        """`environments`: those built before the worker started (``--env``), which
        its registrations name."""
        super().__init__(name="picloud-supervisor", daemon=True)
        self.store = store
        self.warden_name = name
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.environments = tuple(environments)
        self.lease_seconds = lease_seconds
        self.warden = Warden(state_dir, self._kill_with_reason)
        self._wait = wait
        self._check = check
        self.stopping = threading.Event()
        self._lost: dict[int, float] = {}  # pid -> when it was found gone

    def _kill_with_reason(self, tenant: str, jid: int, reason: str) -> list[int]:
        return self.store.kill(tenant, [jid], reason)

    def run(self) -> None:
        """Pass after pass until stopped; store outages are ridden out."""
        last_beat = last_scan = 0.0
        while not self.stopping.is_set():
            try:
                for request in self.store.pop_kill_requests(self.warden_name, self._wait):
                    self.warden.kill(request.tenant, request.jid, request.token)
                if self._check is not None:
                    self._check()
                now = time.time()
                if now - last_scan >= RUNTIME_SCAN_EVERY:  # reads every state file
                    last_scan = now
                    self.warden.enforce_max_runtime()
                if now - last_beat >= HEARTBEAT_EVERY:
                    last_beat = now
                    self._heartbeat(now)
            except Exception as exc:  # Redis restarts etc.: keep going, retry shortly
                if self.stopping.is_set():
                    return
                log.warning("supervision pass failed: %s", exc)
                self.stopping.wait(1.0)

    def _heartbeat(self, now: float) -> None:
        busy = len(self.warden.running())  # processes holding a chunk now
        info = WorkerInfo(
            self.warden_name, self.queues, self.concurrency, now, RUNTIME, busy, self.environments
        )
        self.store.heartbeat(info)
        self.store.renew_leases(self.warden.leased_chunks(), self.lease_seconds)
        # Processes found gone `LOST_GRACE` ago: Celery has recovered a task's chunk by
        # now, with the exit's cause; this catches the rest (jobs taken while idle) long
        # before the leases lapse.
        seen = time.monotonic()
        for pid, found in list(self._lost.items()):
            if seen - found < LOST_GRACE:
                continue
            if psutil.pid_exists(pid):  # the pid was reused: its jobs are not the dead process's
                del self._lost[pid]
                continue
            loss = self.store.recover_worker(worker_name(pid), f"worker lost: process {pid} died")
            del self._lost[pid]  # only once recovered: a store outage retries next beat
            if loss.requeued or loss.errored:
                log.warning("job process %s died; %s", pid, loss)
        for pid in self.warden.lost():
            self._lost.setdefault(pid, seen)
        for line in self.store.reap(now):
            log.warning("%s", line)

    def drain(self, grace: float) -> None:
        """The worker was told to stop: its runners give back what they have not
        started (they watch for the marker the caller wrote); jobs still running after
        `grace` seconds are killed and their chunks recovered (restartable jobs run
        again elsewhere), so the worker can exit without losing any."""

        def overdue() -> None:
            if self.stopping.wait(grace):
                return  # the worker stopped on its own in time
            for state in self.warden.running():
                reason = f"worker lost: it shut down before the job finished ({grace:g} s grace)"
                for job in state.jobs:
                    kill_process_tree(job.pid)
                for key in state.chunks:
                    try:
                        loss = self.store.recover(
                            ChunkRef.parse(key), worker_name(state.pid), reason
                        )
                        log.warning(
                            "draining: chunk %s still running after %ss; %s", key, grace, loss
                        )
                    except Exception:
                        log.exception("draining: recovering chunk %s failed", key)

        threading.Thread(target=overdue, name="picloud-drain", daemon=True).start()

    def stop(self) -> None:
        """Stop the loop and deregister the worker (best effort)."""
        self.stopping.set()
        try:
            self.store.forget_worker(self.warden_name)
        except Exception:
            pass
