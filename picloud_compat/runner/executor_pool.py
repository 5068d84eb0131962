"""`ExecutorPool`: a pool process's executors, one per (tenant, compute type).

With ``isolation = "tenant"`` the Celery pool process keeps up to
``executors_per_process`` executors (`executors.TenantExecutor`), the least recently
used closed first, starts one on a key's first chunk (~0.1 s), replaces one that died
or that a job damaged, and, if one cannot start twice running, ends the chunk's jobs
with the reason rather than leave them queued for a process that never comes.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import psutil

from picloud_compat.config.compute_types import DEFAULT_TYPE
from picloud_compat.environments.builder import BuildHold, env_builder
from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.errors import CloudException, ConfigurationError
from picloud_compat.runner.executors import PoolStore, TenantExecutor
from picloud_compat.runner.hygiene import ProcessDamaged
from picloud_compat.runner.limits import cgroups_usable, remove_stale
from picloud_compat.runner.slots import SlotLedger
from picloud_compat.runner.state_file import RunnerIdentity, StateFile
from picloud_compat.settings import Settings
from picloud_compat.store.records import ChunkRef
from picloud_compat.store.remote.channel import ChannelClosed
from picloud_compat.store.remote.scope import Services

log = logging.getLogger("picloud.executors")


class ExecutorPool:
    """A pool process's executors, by (tenant, compute type)."""

    def __init__(
        self,
        settings: Settings,
        store: PoolStore,
        identity: RunnerIdentity,
        services_for: Callable[[str], Services],
    ) -> None:
        """`services_for(tenant)` answers an executor's files and cron calls."""
        if not settings.signing_key:
            raise ConfigurationError("tenant isolation needs PICLOUD_SIGNING_KEY on workers")
        self.settings = settings
        self.store = store
        self.identity = identity
        self._services_for = services_for
        if os.geteuid() == 0:
            check_readable_by_executors()
        if cgroups_usable():
            remove_stale(socket.gethostname(), psutil.pid_exists)
        self.state = StateFile(identity.state_dir)
        self.slots = SlotLedger(identity.state_dir)  # held here for the executors
        self._builder = env_builder(settings)
        self._holds: dict[str, BuildHold] = {}  # builds this process's executors run
        # by (tenant, compute type, environment)
        self._executors: OrderedDict[tuple[str, str, str], TenantExecutor] = OrderedDict()
        self.failed: list[tuple[int, str]] = []
        """Jobs of the last chunk that ended `error` (what Flower shows of it)."""
        self.killed: int | None = None
        """The job whose kill ended the last chunk's executor, if one did."""

    def run(self, chunk: ChunkRef, compute_type: str = DEFAULT_TYPE, env: str | None = None) -> int:
        """Run `chunk` in its tenant's executor for the type and environment (started,
        and the environment built, if needed)."""
        compute_type = compute_type or DEFAULT_TYPE
        build, interpreter, refusal = "", sys.executable, None
        if env:
            self.state.push(chunk.key)  # leased while the environment builds
            try:
                build, interpreter, refusal = self._environment(chunk.tenant, env)
            finally:
                self.state.pop()
        # by build, not name: a replaced environment's jobs never reach the old one
        key = (chunk.tenant, compute_type, build)
        executor = self._executors.pop(key, None)
        if executor is not None and not executor.alive():
            executor.close()
            executor = None
        if executor is None:
            executor = self._start(chunk, compute_type, env, interpreter, refusal)
            if executor is None:
                self._release_unused()
                return 0
        if executor.refusal is None:  # one refusing jobs is not kept: the next may build
            self._executors[key] = executor
        while len(self._executors) > max(1, self.settings.executors_per_process):
            _, oldest = self._executors.popitem(last=False)
            oldest.close()
        started = time.monotonic()
        self.failed = []
        self.killed = None
        self.slots.enter_chunk()
        try:
            ran = executor.run(chunk)
            self.failed = executor.failed
            return ran
        except ChannelClosed:
            log.warning(
                "executor of %s died after %.1f s running %s",
                chunk.tenant,
                time.monotonic() - started,
                chunk.key,
            )
            self.killed = executor.killed
            self._executors.pop(key, None)
            executor.close()
            return 0
        except ProcessDamaged as exc:
            log.warning("replacing the executor of %s: %s", chunk.tenant, exc)
            self._executors.pop(key, None)
            executor.close()
            return 0
        except CloudException:
            raise
        finally:
            self.slots.leave_chunk()
            executor.end_chunk()
            self._release_unused()

    def _release_unused(self) -> None:
        """Let go of builds no kept executor runs (so the cache may evict them)."""
        running = {build for _, _, build in self._executors}
        for build in [b for b in self._holds if b not in running]:
            self._holds.pop(build).release()

    def _environment(self, tenant: str, env: str) -> tuple[str, str, str | None]:
        """(build id, interpreter, refusal) for jobs of `env`: a build's (made now if
        needed); or, when it cannot be built, the worker's with the reason every job will
        fail with, as a job error carrying the build's log."""
        try:
            spec = EnvRegistry(self.store, tenant).get(env)
            build = spec.digest()
            if build not in self._holds:  # kept from eviction while executors of it live
                self._holds[build] = self._builder.hold(spec)
            return build, str(self._holds[build].interpreter), None
        except Exception as exc:  # a record the tenant wrote may be anything
            reason = exc.parameter if isinstance(exc, CloudException) else exc
            return f"refused:{env}", sys.executable, f"environment {env!r}: {reason}"

    def _start(
        self,
        chunk: ChunkRef,
        compute_type: str,
        env: str | None,
        interpreter: str,
        refusal: str | None,
    ) -> TenantExecutor | None:
        """A new executor; if it cannot start twice running, the chunk's jobs are ended
        with the reason (they would otherwise wait for a process that never comes)."""
        for attempt in (1, 2):
            try:
                return TenantExecutor(
                    self.settings,
                    self.store,
                    self.identity,
                    self.state,
                    chunk.tenant,
                    compute_type,
                    self._services_for,
                    self.slots,
                    interpreter,
                    refusal,
                    env,
                )
            except (OSError, CloudException) as exc:
                log.error("executor for %s failed to start (%s): %s", chunk.tenant, attempt, exc)
                failure = exc
                time.sleep(1.0)
        reason = f"this worker could not start a process for the job: {failure}"
        self.store.kill(chunk.tenant, list(chunk.jids), reason)
        return None

    def close(self) -> None:
        """Stop every executor."""
        while self._executors:
            _, executor = self._executors.popitem()
            executor.close()
        self._release_unused()
        self.state.close()


def check_readable_by_executors() -> None:
    """Executors run under other uids: the interpreter and the platform must be
    readable by them. Say which directory is not, rather than fail every job."""
    import picloud_compat

    places = (Path(picloud_compat.__file__).parent, Path(sys.prefix), Path(sys.base_prefix))
    for start in (*places, Path(os.path.realpath(sys.executable))):
        for directory in (start, *start.parents):
            if directory.is_dir() and not directory.stat().st_mode & 0o001:
                raise ConfigurationError(
                    f"tenant isolation runs jobs under per-tenant uids, which cannot enter "
                    f"{directory} (mode {directory.stat().st_mode & 0o777:o}): install the "
                    f"platform where others can read it, or chmod o+x that directory"
                )
