"""The pool process's side of tenant isolation: starting, serving and replacing executors.

With ``isolation = "tenant"``, a Celery pool process keeps one executor
(`runner.executor`) per (tenant, compute type) it has recently served, up to
``executors_per_process`` (the least recently used is closed). Each executor:

- is exec'd with an empty environment except PATH and PYTHONPATH, in a private home
  directory, under its tenant's own uid (``executor_uid_base`` + API key) when the
  worker runs as root, so jobs of different tenants cannot signal, trace or read each
  other, nor the pool process;
- runs in a memory cgroup sized by its compute type (`limits`), or under an
  address-space limit where cgroups are unavailable;
- reaches the store only through its channel, answered here by a `TenantScope` for its
  tenant, which claims in this process's name;
- reports what it runs; this process writes the state file the warden trusts, and only
  accepts a pid that is the executor or one of its children.

When an executor dies mid-chunk (a kill, ``_max_runtime``, an out-of-memory kill, a
crash), this process records an out-of-memory job as an error naming the limit, hands
the chunks it held to the store's recovery, and serves the next chunk with a new one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import psutil

from picloud_compat.config.compute_types import memory_limit_mb
from picloud_compat.runner.hygiene import ProcessDamaged
from picloud_compat.runner.limits import MemoryCgroup, cgroups_usable
from picloud_compat.runner.slots import SlotLedger
from picloud_compat.runner.state_file import RunnerIdentity, StateFile, drain_check
from picloud_compat.settings import Settings
from picloud_compat.signing import tenant_key
from picloud_compat.store.contract import JobProcessStore, SupervisionStore
from picloud_compat.store.records import ChunkRef, Outcome
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.channel import Channel, ChannelClosed
from picloud_compat.store.remote.scope import Services, TenantScope, answer

log = logging.getLogger("picloud.executors")

EXECUTOR_SETTINGS = (
    "max_transmit_data",
    "retention_seconds",
    "max_attempts",
    "inline_result_limit",
    "output_limit",
    "log_level",
    "gateway_url",
)
"""The settings an executor is given: what jobs and their nested calls need, no secret."""
START_TIMEOUT = 60.0
MAX_NESTING = 8
"""Chunks an executor may hold at once (a parent helping nested jobs stacks them)."""
_names = itertools.count(1)


class PoolStore(JobProcessStore, SupervisionStore, Protocol):
    """What the pool process needs: to serve executors and to recover their chunks."""


def executor_uid(settings: Settings, tenant: str) -> int:
    """The uid a tenant's executors run as: one per API key, never shared."""
    if tenant.isdigit() and int(tenant) < 1_000_000:
        return settings.executor_uid_base + int(tenant)
    return settings.executor_uid_base + 1_000_000 + zlib.crc32(tenant.encode()) % 1_000_000


class TenantExecutor:
    """One running executor and the channel to it."""

    def __init__(
        self,
        settings: Settings,
        store: PoolStore,
        identity: RunnerIdentity,
        state: StateFile,
        tenant: str,
        compute_type: str,
        services_for: Callable[[str], Services],
        slots: SlotLedger,
        interpreter: str = sys.executable,
        refusal: str | None = None,
        env: str | None = None,
    ) -> None:
        """`interpreter` runs the jobs (an environment's); with `refusal`, every job of
        the executor fails with it instead (an environment that could not be built)."""
        self.tenant = tenant
        self.refusal = refusal
        self._widened = False  # holding a `_cores` job's extra slots
        self._interpreter = interpreter
        self._slots = slots  # the pool process's: widened when a job asks (`_cores`)
        self.compute_type = compute_type
        self.limit_mb = memory_limit_mb(compute_type, settings.memory_limits)
        self._store = store
        self._identity = identity
        self._state = state
        self._stack: list[str] = []  # chunks the executor reported, innermost last
        self._draining = drain_check(identity.state_dir)
        self._job: tuple[str, int, str] | None = None  # (chunk key, jid, token) running
        self._peaks: dict[int, tuple[int, int]] = {}
        self.failed: list[tuple[int, str]] = []  # as the executor reported for its last chunk
        self.killed: int | None = None  # the job whose kill ended the executor, if one did
        self._lock = threading.Lock()
        services = services_for(tenant)
        self._running: ChunkRef | None = None  # the chunk the pool asked it to run
        self._scope = TenantScope(
            store,
            tenant,
            runner=(identity.worker, identity.warden),
            services=services,
            allow_chunk=self._may_work_on,
        )
        limit = self.limit_mb * 1024 * 1024
        name = f"{socket.gethostname()}-{os.getpid()}-{next(_names)}"
        self.cgroup = MemoryCgroup(name, limit) if cgroups_usable() else None
        ours, theirs = socket.socketpair()
        try:
            self.proc = self._spawn(settings, theirs)
        finally:
            theirs.close()
        if self.cgroup is not None:
            self.cgroup.add(self.proc.pid)
        self.channel = Channel(
            ours,
            self._serve,
            handlers=8,
            inline=self._report,
            max_frame=settings.max_transmit_data + FRAME_MARGIN,
            max_queued=MAX_QUEUED_CALLS,
        )
        config = {
            "tenant": tenant,
            "tenant_key": tenant_key(settings.signing_key or "", tenant).hex(),
            "settings": {k: getattr(settings, k) for k in EXECUTOR_SETTINGS},
            "worker": identity.worker,
            "warden": identity.warden,
            "rlimit_bytes": 0 if self.cgroup is not None else limit + 512 * 1024 * 1024,
            "slots": slots.count,
            "refusal": refusal,
            "env": env,
        }
        try:
            self._request("start", config, START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _spawn(self, settings: Settings, theirs: socket.socket) -> subprocess.Popen[bytes]:
        as_root = os.geteuid() == 0
        uid = executor_uid(settings, self.tenant) if as_root else os.geteuid()
        home = Path(tempfile.gettempdir()) / "picloud-executors" / str(uid)
        home.mkdir(parents=True, exist_ok=True)
        if as_root:
            home.parent.chmod(0o711)
            os.chown(home, uid, uid)
        home.chmod(0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1",
        }
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        # -I: neither the environment nor the (tenant-writable) current directory can put
        # a module in front of the platform's
        argv = [self._interpreter, "-I", "-m", "picloud_compat.runner.executor"]
        argv.append(str(theirs.fileno()))
        if as_root:  # confined by the worker's own interpreter before the job's starts
            procs = "" if self.cgroup is None else str(self.cgroup.path / "cgroup.procs")
            launcher = [sys.executable, "-I", "-m", "picloud_compat.runner.launch"]
            argv = [*launcher, str(uid), procs, *argv]
        return subprocess.Popen(
            argv, pass_fds=[theirs.fileno()], env=env, cwd=home, stdin=subprocess.DEVNULL
        )

    # -- what the pool process asks ------------------------------------------------------

    def run(self, chunk: ChunkRef) -> int:
        """Run `chunk` in the executor; raises ChannelClosed if it died meanwhile (its
        chunks are recovered first) and ProcessDamaged if a job damaged it."""
        self._running = chunk
        try:
            ran, failed = self._request("run", chunk, None)
        except ChannelClosed:
            self._recover_after_death()
            raise
        self.failed = [(int(jid), str(text)[:200]) for jid, text in failed]
        return int(ran)

    def end_chunk(self) -> None:
        """The chunk is over: no job of it can hold cores any more."""
        self._narrow()
        self._running = None

    def _may_work_on(self, chunk: ChunkRef) -> bool:
        """The chunk it was asked to run, chunks it reported holding, or one job
        (nested jobs it helps run): nothing that makes the store loop over other jids."""
        return chunk.count == 1 or chunk == self._running or chunk.key in self._stack

    def alive(self) -> bool:
        """Whether the executor can take work."""
        return self.proc.poll() is None and not self.channel.closed.is_set()

    def _narrow(self) -> None:
        if self._widened:
            self._widened = False
            self._slots.narrow()

    def close(self) -> None:
        """Stop the executor (its jobs are done or recovered) and remove its cgroup."""
        self._narrow()
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.cgroup is not None:
            self.cgroup.remove()

    def _request(self, method: str, value: Any, timeout: float | None) -> Any:
        reply = wire.unpack(self.channel.request(method, wire.pack([value]), timeout))
        if reply[0] is True:
            return reply[1]
        if reply[1] == "ProcessDamaged":
            raise ProcessDamaged(str(reply[2]))
        wire.raise_error(str(reply[1]), reply[2] if len(reply) > 2 else None)

    # -- what the executor asks ----------------------------------------------------------

    def _serve(self, method: str, body: bytes) -> bytes:
        return answer(self._scoped, body)

    def _scoped(self, method: str, args: list[Any]) -> Any:
        if method == "draining":  # the worker is scaling in (the executor cannot look)
            return self._draining()
        if method == "cores_widen":  # a `_cores` job is about to start
            (cores,) = args
            if type(cores) is not int or not 1 <= cores <= self._slots.count:
                raise ValueError(f"cannot hold {cores!r} cores of {self._slots.count}")
            if self._running is None or self._widened:
                raise ValueError("cores are held only for a job of the chunk being run")
            self._widened = True
            self._slots.widen(cores)
            return None
        if method == "cores_narrow":
            self._narrow()
            return None
        if method == "finish" and self.cgroup is not None and len(args) > 1:
            args = [args[0], [self._with_memory(o) for o in args[1]], *args[2:]]
        return self._scope.call(method, args)

    def _with_memory(self, outcome: Any) -> Any:
        if not isinstance(outcome, Outcome):
            return outcome
        with self._lock:
            peak = self._peaks.pop(outcome.jid, None)
        if peak is None:
            return outcome
        return dataclasses.replace(outcome, memory_peak=peak[0], memory_failcnt=peak[1])

    def _report(self, method: str, body: bytes) -> None:
        """State reports, in order, on the channel's reading thread. Anything out of
        bounds (another tenant's chunk, a pid that is not the executor's) ends the
        executor: it is no longer trusted to describe itself."""
        try:
            args = wire.unpack(body) if body else []
            with self._lock:
                self._apply(method, args)
        except Exception as exc:
            log.warning("executor of %s sent a bad report (%s): closing it", self.tenant, exc)
            self.channel.close()

    def _apply(self, method: str, args: list[Any]) -> None:
        if method == "state_push":
            (key,) = args
            chunk = ChunkRef.parse(str(key))  # bounds checked; written in its own form
            if chunk.tenant != self.tenant or not self._may_work_on(chunk):
                raise ValueError(f"chunk {key!r} is not one this executor runs")
            if len(self._stack) >= MAX_NESTING:
                raise ValueError("chunks nested deeper than helping ever goes")
            self._stack.append(chunk.key)
            self._state.push(chunk.key)
        elif method == "state_pop":
            if not self._stack:
                raise ValueError("pop without a chunk")
            self._stack.pop()
            self._state.pop()
        elif method == "state_job":
            t, jid, token, pid, started, max_runtime = args
            self._check_job(t, jid, token, started, max_runtime)
            if int(pid) != self.proc.pid and not _descends_from(int(pid), self.proc.pid):
                raise ValueError(f"pid {pid} is not the executor's")
            self._job = (self._stack[-1], int(jid), str(token))
            if self.cgroup is not None:
                self.cgroup.reset_peak()
            self._state.set_job(t, int(jid), str(token), int(pid), float(started), max_runtime)
        elif method == "state_clear":
            self._narrow()  # a job's extra cores end with it, whatever the executor says
            if self._job is not None and self.cgroup is not None:
                self._peaks[self._job[1]] = self.cgroup.peak()
            self._job = None
            if self._stack:
                self._state.clear_job()
        else:
            raise ValueError(f"unknown report {method!r}")

    def _check_job(self, t: Any, jid: Any, token: Any, started: Any, max_runtime: Any) -> None:
        """A job report says what the warden will act on: every field must be sane."""
        if t != self.tenant or not self._stack:
            raise ValueError("a job outside this tenant's chunks")
        if int(jid) not in ChunkRef.parse(self._stack[-1]).jids:
            raise ValueError(f"job {jid!r} is not in the chunk it runs")
        if not (isinstance(token, str) and TOKEN.fullmatch(token)):
            raise ValueError("a malformed attempt token")
        if not (_finite(started) and abs(float(started) - time.time()) < 86400):
            raise ValueError(f"a start time of {started!r}")
        if max_runtime is not None and not (_finite(max_runtime) and max_runtime >= 0):
            raise ValueError(f"a max_runtime of {max_runtime!r}")

    # -- when it dies --------------------------------------------------------------------

    def _recover_after_death(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        code = self.proc.returncode
        with self._lock:
            stack, job = list(self._stack), self._job
            for _ in stack:
                self._state.pop()
            self._stack.clear()
            self._job = None
        worker = self._identity.worker
        if job is not None and self.cgroup is not None and self.cgroup.killed_for_memory():
            key, jid, token = job
            message = (
                f"MemoryError: the job exceeded the memory limit of its compute type "
                f"({self.compute_type}: {self.limit_mb} MB) and was stopped"
            )
            peak = self.cgroup.peak()
            outcome = Outcome(jid, token, "error", exception=message)
            outcome = dataclasses.replace(outcome, memory_peak=peak[0], memory_failcnt=peak[1])
            self._store.finish(ChunkRef.parse(key), [outcome], worker, end=False)
            log.warning("job %s/%s exceeded %s MB", self.tenant, jid, self.limit_mb)
        if job is not None and self._store.statuses(self.tenant, [job[1]]) == ["killed"]:
            self.killed = job[1]
        reason = f"worker lost: the job's executor exited ({_describe_exit(code)})"
        for key in reversed(stack):
            loss = self._store.recover(ChunkRef.parse(key), worker, reason)
            log.info("chunk %s: executor lost; %s", key, loss)


TOKEN = re.compile(r"[0-9a-f]{16}")
"""An attempt token as `ChunkRunner` makes them (what reaches the state file)."""
FRAME_MARGIN = 16 * 1024 * 1024
"""Bytes a message from an executor may exceed its largest argument by."""
MAX_QUEUED_CALLS = 256
"""Calls from an executor waiting for a thread; beyond this it is flooding: closed."""


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _descends_from(pid: int, ancestor: int) -> bool:
    try:
        return any(p.pid == ancestor for p in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"signal {-code}"
    return f"exit status {code}"
