"""Worker lifecycle hooks: state directory, warden thread, registration.

Connected through Celery signals when `picloud_compat.tasks.app` is imported, so they
run for ``celery -A picloud_compat.tasks.app worker`` as well as ``picloud worker``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import signals

from picloud_compat import keys
from picloud_compat.runner import worker_name
from picloud_compat.warden import Warden
from picloud_compat.workers import reaper, runtime

log = logging.getLogger("picloud.worker")

HEARTBEAT_EVERY = 2.0
"""Seconds between worker registrations / lease renewals."""


class WardenThread(threading.Thread):
    def __init__(
        self, warden_id: str, state_dir: Path, queues: list[str], concurrency: int
    ) -> None:
        super().__init__(name="picloud-warden", daemon=True)
        self.warden_id = warden_id
        self.queues = queues
        self.concurrency = concurrency
        self.store = runtime.main_store()
        self.warden = Warden(state_dir, self._kill_with_reason)
        self.stopping = threading.Event()

    def _kill_with_reason(self, tenant: str, jid: int, reason: str) -> Any:
        return self.store.kill_with_reason(tenant, [jid], reason)

    def run(self) -> None:
        last_beat = 0.0
        while not self.stopping.is_set():
            try:
                for tenant, jid, _worker, token in self.store.pop_kill_requests(
                    self.warden_id, 0.25
                ):
                    self.warden.kill(tenant, jid, token)
                self.warden.enforce_max_runtime()
                now = time.time()
                if now - last_beat >= HEARTBEAT_EVERY:
                    last_beat = now
                    self._heartbeat(now)
                    self.store.renew_leases(
                        self.warden.leased_chunks(), self.store.settings.lease_seconds
                    )
                    reaper.reap(self.store, now)
            except Exception as exc:  # Redis restarts etc.: keep going, retry shortly
                log.warning("warden pass failed: %s", exc)
                self.stopping.wait(1.0)

    def _heartbeat(self, now: float) -> None:
        info = {"queues": self.queues, "concurrency": self.concurrency, "seen": now}
        self.store.redis.hset(keys.WORKERS, self.warden_id, json.dumps(info))

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.store.redis.hdel(keys.WORKERS, self.warden_id)
        except Exception:
            pass


_warden: WardenThread | None = None
_state_dir: Path | None = None


@signals.worker_init.connect
def _prepare(**_: Any) -> None:
    """Main process, before the pool forks: children inherit these variables."""
    global _state_dir
    _state_dir = Path(tempfile.mkdtemp(prefix=f"picloud-worker-{os.getpid()}-"))
    os.environ[runtime.STATE_DIR_ENV] = str(_state_dir)
    os.environ[runtime.WARDEN_ENV] = worker_name()
    runtime.settings()  # fail fast on missing configuration


@signals.worker_ready.connect
def _start_warden(sender: Any = None, **_: Any) -> None:
    global _warden
    if _state_dir is None:
        return
    consumer = sender
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer else []
    concurrency = consumer.pool.num_processes if consumer and consumer.pool else 1
    _warden = WardenThread(worker_name(), _state_dir, queues, concurrency)
    _warden.start()
    log.info("picloud worker %s ready on %s (concurrency %s)", worker_name(), queues, concurrency)


@signals.worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    if _warden is not None:
        _warden.stop()
    if _state_dir is not None:
        shutil.rmtree(_state_dir, ignore_errors=True)
