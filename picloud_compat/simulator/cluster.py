"""`LocalCluster`: the simulator, a whole cluster inside one machine and no server.

One `MemoryStore` in this process, served over an authenticated local socket; N job
processes (``python -m picloud_compat.simulator.worker``) that pull chunks and run them
with the same bootstrap and `ChunkRunner` Celery workers use (and N more of each
environment's interpreter that jobs use: `simulator.environments`); and the same
supervision loop as a Celery worker (`workers.supervisor`), which kills jobs, enforces
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
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

from picloud_compat.runner import slots
from picloud_compat.runner.hygiene import RECYCLE_EXIT
from picloud_compat.runner.state_file import worker_name
from picloud_compat.settings import Settings
from picloud_compat.simulator.environments import SimulatedEnvironments
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
        self._roles: dict[int, tuple[str, str, str | None, str]] = {}  # pid -> _spawn's args
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.environments = SimulatedEnvironments(self.store, settings, self._spawn)
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
            check=self._check,
        )
        self.supervisor.start()

    def _check(self) -> None:
        """Every supervision pass: replace dead processes, serve queued environments."""
        self._replace_dead_processes()
        if not self._closing.is_set():
            self.environments.serve()

    def _spawn(
        self,
        interpreter: str = sys.executable,
        env: str = "",
        refusal: str | None = None,
        digest: str = "",
    ) -> None:
        """One job process of `interpreter`, taking the chunks of environment `env` (''
        none), or failing them with `refusal` while its requirements' digest is `digest`."""
        if self._closing.is_set():
            return
        variables = dict(os.environ)
        variables["PYTHONPATH"] = os.pathsep.join(_import_path(own=interpreter == sys.executable))
        proc = subprocess.Popen(
            [interpreter, "-m", "picloud_compat.simulator.worker"],
            stdin=subprocess.PIPE,
            env=variables,
            start_new_session=True,
        )
        config = {
            "address": self.address,
            "authkey": self._authkey.hex(),
            "warden": self.warden_id,
            "state_dir": str(self.state_dir),
            "processes": self.processes,
            "settings": dataclasses.asdict(self.settings),
            "env": env,
            "refusal": refusal,
            "digest": digest,
        }
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(config) + "\n").encode())
        proc.stdin.close()
        with self._lock:
            self._procs[proc.pid] = proc
            self._roles[proc.pid] = (interpreter, env, refusal, digest)

    def _replace_dead_processes(self) -> None:
        """Recover the jobs of job processes that died, and start replacements."""
        with self._lock:
            dead = [(pid, p.returncode) for pid, p in self._procs.items() if p.poll() is not None]
            for pid, _ in dead:
                del self._procs[pid]
        for pid, code in dead:
            if self._closing.is_set():
                return
            role = self._roles.pop(pid)
            reason = f"worker lost: simulator process {pid} exited ({_describe_exit(code)})"
            loss = self.store.recover_worker(worker_name(pid), reason)
            log.info("%s; %s", reason, loss)
            (self.state_dir / str(pid)).unlink(missing_ok=True)
            if role[2] is not None and code == 0:  # a refusal that failed what was queued
                self.environments.ended(role[1])
            else:
                self._spawn(*role)

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


def _import_path(own: bool) -> list[str]:
    """What job processes import from: this interpreter's path (the user's modules);
    for an environment's interpreter without site-packages, which would put the user's
    packages before the environment's (its build reaches ours after its own)."""
    paths = [p for p in sys.path if p and Path(p).exists()]
    if own:
        return paths
    stdlib = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    installed = {*site.getsitepackages(), site.getusersitepackages(), *stdlib}
    return [p for p in paths if p not in installed and not p.endswith(".zip")]


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
