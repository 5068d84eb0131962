"""`LocalCluster`: the simulator, a whole cluster inside one machine and no server.

One `MemoryJobStore` in this process, served over an authenticated local socket; N
worker processes (``python -m picloud_compat.simulator.worker``) that pull chunks and
run them with the same `ChunkRunner` Celery workers use; a warden thread that kills
jobs and enforces ``_max_runtime``; and a supervisor thread that notices dead worker
processes, recovers their jobs exactly as the cluster does, and starts replacements.
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

from picloud_compat.runner import worker_name
from picloud_compat.settings import Settings
from picloud_compat.simulator.memory_store import MemoryJobStore
from picloud_compat.simulator.rpc import StoreServer
from picloud_compat.warden import Warden

log = logging.getLogger("picloud.simulator")


class LocalCluster:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes = settings.processes
        self.store = MemoryJobStore(settings)
        self._dir = Path(tempfile.mkdtemp(prefix="picloud-sim-"))
        self.state_dir = self._dir / "state"
        self.state_dir.mkdir()
        self.address = str(self._dir / "store.sock")
        self._authkey = secrets.token_bytes(32)
        self.server = StoreServer(self.store, self.address, self._authkey)
        self.warden_id = f"simulator:{os.getpid()}:{secrets.token_hex(4)}"
        self.warden = Warden(self.state_dir, self._kill_with_reason)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        for _ in range(self.processes):
            self._spawn()
        threading.Thread(target=self._warden_loop, name="picloud-sim-warden", daemon=True).start()
        threading.Thread(target=self._supervise, name="picloud-sim-supervisor", daemon=True).start()

    def _kill_with_reason(self, tenant: str, jid: int, reason: str) -> list[int]:
        return self.store.kill_with_reason(tenant, [jid], reason)

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

    def _warden_loop(self) -> None:
        while not self._closing.is_set():
            try:
                for tenant, jid, _worker, token in self.store.pop_kill_requests(0.25):
                    self.warden.kill(tenant, jid, token)
                self.warden.enforce_max_runtime()
            except Exception:
                log.exception("simulator warden pass failed")

    def _supervise(self) -> None:
        while not self._closing.wait(0.05):
            with self._lock:
                dead = [
                    (pid, p.returncode) for pid, p in self._procs.items() if p.poll() is not None
                ]
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
        with self._lock:
            return list(self._procs)

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
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
    if code is not None and code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
