"""Environments (``_env``) on the simulator: built as a worker builds them, run in
processes of their own interpreter.

The simulator's broker keeps one queue per environment (`MemoryStore.next_chunk`). When
chunks of an environment are queued and no process serves it, one is built in a thread
of its own (uv, into ``env_dir``, cached by the requirements' digest like a worker's
builds: `environments.builder`) and the simulator's number of job processes is started
with its interpreter. They share the simulator's core slots, so no more jobs run at
once than it has processes. If the build fails, one process of the user's interpreter
fails the queued jobs with the build's log, as a worker does, then leaves: the next
chunk of that environment tries the build again (a failure is remembered for a minute),
and so does one queued after the environment was created anew.

A process keeps the build it started with: an environment replaced meanwhile (deleted
and created again) takes effect when its processes end, e.g. with the simulator.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable

from picloud_compat.environments.builder import BuildHold, env_builder
from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.errors import CloudException
from picloud_compat.settings import Settings
from picloud_compat.store.memory import MemoryStore

log = logging.getLogger("picloud.simulator")

Spawn = Callable[[str, str, str | None, str], None]
"""Starts one job process: (interpreter, environment, refusal or None, the digest of the
requirements it was made for)."""


class SimulatedEnvironments:
    """Which environments have processes, and starting them for queued chunks."""

    def __init__(self, store: MemoryStore, settings: Settings, spawn: Spawn) -> None:
        self._store = store
        self._settings = settings
        self._spawn = spawn
        self._builder = env_builder(settings)
        self._lock = threading.Lock()
        self._served: set[str] = set()  # built, or being built
        # builds this simulator's processes run, kept from eviction for its life (the
        # locks go with the process)
        self._holds: dict[str, BuildHold] = {}

    def serve(self) -> None:
        """Start building each environment whose chunks wait for processes."""
        for env in self._store.queued_environments():
            with self._lock:
                if env in self._served:
                    continue
                self._served.add(env)
            threading.Thread(target=self._start, args=(env,), daemon=True).start()

    def ended(self, env: str) -> None:
        """The processes of `env` are gone (its refusal finished): build it again for
        its next chunk."""
        with self._lock:
            self._served.discard(env)

    def _start(self, env: str) -> None:
        tenant, _, name = env.partition(":")
        digest = ""
        try:
            spec = EnvRegistry(self._store, tenant).get(name)
            digest = spec.digest()
            with self._lock:
                held = self._holds.get(digest)
            if held is None:
                held = self._builder.hold(spec)
                with self._lock:
                    self._holds.setdefault(digest, held)
            interpreter, refusal = str(held.interpreter), None
        except Exception as exc:  # a record, a build: anything may fail; the jobs say why
            reason = exc.parameter if isinstance(exc, CloudException) else exc
            interpreter, refusal = sys.executable, f"environment {name!r}: {reason}"
            log.warning("environment %s cannot be built: %s", env, reason)
        for _ in range(1 if refusal else self._settings.processes):
            self._spawn(interpreter, env, refusal, digest)
