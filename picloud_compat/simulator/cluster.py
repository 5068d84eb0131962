"""`LocalCluster`: the simulator, a whole cluster inside one machine and no server.

One `MemoryStore` in this process, served over an authenticated local socket; N job
processes (``python -m picloud_compat.simulator.worker``) that pull chunks and run them
with the same bootstrap and `ChunkRunner` Celery workers use; and the same supervision
loop as a Celery worker (`workers.supervisor`), which kills jobs, enforces
``_max_runtime`` and, through its `check` hook here, notices dead job processes,
recovers their jobs exactly as the cluster does, and starts replacements.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from picloud_compat.runner import slots
from picloud_compat.runner.hygiene import RECYCLE_EXIT
from picloud_compat.runner.state_file import worker_name
from picloud_compat.settings import Settings
from picloud_compat.simulator.rpc import StoreServer
from picloud_compat.store.memory import MemoryStore
from picloud_compat.workers.supervisor import Supervisor

log = logging.getLogger("picloud.simulator")


class LocalCluster:
    """A whole cluster in this process and its children; `close()` stops it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes = settings.processes
        self.store = MemoryStore(settings)
        self._dir = Path(tempfile.mkdtemp(prefix="picloud-sim-"))
        self.state_dir = self._dir / "state"
        self.state_dir.mkdir()
        slots.prepare(self.state_dir, self.processes)  # what `_cores` jobs hold
        self.address = str(self._dir / "store.sock")
        self._authkey = secrets.token_bytes(32)
        self.server = StoreServer(self.store, self.address, self._authkey)
        self.warden_id = f"simulator:{os.getpid()}:{secrets.token_hex(4)}"
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        for _ in range(self.processes):
            self._spawn()
        self.supervisor = Supervisor(
            self.store,
            self.warden_id,
            self.state_dir,
            ["all"],
            self.processes,
            settings.lease_seconds,
            wait=0.05,
            check=self._replace_dead_processes,
        )
        self.supervisor.start()

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and Path(p).exists())
        proc = subprocess.Popen(
            [sys.executable, "-m", "picloud_compat.simulator.worker"],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        config = {
            "address": self.address,
            "authkey": self._authkey.hex(),
            "warden": self.warden_id,
            "state_dir": str(self.state_dir),
            "processes": self.processes,
            "settings": dataclasses.asdict(self.settings),
        }
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(config) + "\n").encode())
        proc.stdin.close()
        with self._lock:
            self._procs[proc.pid] = proc

    def _replace_dead_processes(self) -> None:
        """Recover the jobs of job processes that died, and start replacements."""
        with self._lock:
            dead = [(pid, p.returncode) for pid, p in self._procs.items() if p.poll() is not None]
            for pid, _ in dead:
                del self._procs[pid]
        for pid, code in dead:
            if self._closing.is_set():
                return
            reason = f"worker lost: simulator process {pid} exited ({_describe_exit(code)})"
            loss = self.store.recover_worker(worker_name(pid), reason)
            log.info("%s; %s", reason, loss)
            (self.state_dir / str(pid)).unlink(missing_ok=True)
            self._spawn()

    def pids(self) -> list[int]:
        """Pids of the live job processes."""
        with self._lock:
            return list(self._procs)

    def close(self) -> None:
        """Stop the job processes (SIGTERM, then SIGKILL after 2 s) and the store."""
        if self._closing.is_set():
            return
        self._closing.set()
        self.supervisor.stop()
        self.store.close()
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        for p in procs:
            _signal(p, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait()
        self.server.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def _describe_exit(code: int | None) -> str:
    if code == RECYCLE_EXIT:
        return "replaced after a job damaged it"
    if code is not None and code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
