"""Nested jobs without deadlock: a job waiting on other jobs runs them itself.

A pool of N processes deadlocks when N jobs each wait on a job queued behind them.
So when code *inside a job* waits (`cloud.result`, `join`, `iresult`) on jobs that are
still queued, the waiting process claims them (atomically, like any worker) and runs
them inline; their queued messages are then skipped by whichever worker gets them.
Jobs that are `waiting` on parents get their queued parents run the same way.
"""

from __future__ import annotations

import time

from picloud_compat.jobspec import JobSpec, SpecCache
from picloud_compat.runner.chunk import ChunkRunner
from picloud_compat.runner.execution import current_job
from picloud_compat.store.contract import ClientStore
from picloud_compat.store.records import ChunkRef

HELP_AFTER = 0.05
"""Seconds a nested wait gives other workers before running the awaited jobs itself."""
_MAX_DEPTH = 8

_runner: ChunkRunner | None = None


def register_runner(runner: ChunkRunner) -> None:
    """This process runs jobs with `runner`: waits inside them may help."""
    global _runner
    _runner = runner


_environment: str | None = None
"""The environment (``_env``) this process's interpreter is: only jobs of the same are
run here (a job of another would find the wrong packages)."""


def set_environment(name: str | None) -> None:
    """Say which environment this process runs (an executor, at start)."""
    global _environment
    _environment = name or None


def helper() -> Helper | None:
    """A helper for the wait about to start, if it is a wait inside a job."""
    if _runner is None or current_job() is None:
        return None
    return Helper(_runner)


class Helper:
    """Runs awaited jobs in the waiting process once they sat queued for a moment."""

    def __init__(self, runner: ChunkRunner) -> None:
        self._runner = runner
        self._since = time.monotonic()

    def help(self, store: ClientStore, tenant: str, pending: set[int]) -> bool:
        """Run one runnable awaited job here; True if one ran."""
        if time.monotonic() - self._since < HELP_AFTER:
            return False
        candidates = sorted(pending)[:64]
        for _ in range(_MAX_DEPTH):
            statuses = store.statuses(tenant, candidates)
            queued = [j for j, s in zip(candidates, statuses, strict=True) if s == "queued"]
            queued = _of_this_environment(store, tenant, queued)
            if queued:
                self._runner.run(ChunkRef(tenant, queued[0], 1))
                return True
            waiting = [j for j, s in zip(candidates, statuses, strict=True) if s == "waiting"]
            if not waiting:
                return False
            candidates = sorted(_parents(store, tenant, waiting))[:64]
            if not candidates:
                return False
        return False


def _of_this_environment(store: ClientStore, tenant: str, jids: list[int]) -> list[int]:
    """Those of `jids` whose environment is this process's (the worker's own: none)."""
    if not jids:
        return jids
    specs = SpecCache(store.spec)
    entries = store.info(tenant, jids, ["spec"])
    return [
        jid
        for jid, entry in zip(jids, entries, strict=True)
        if entry is not None and (specs.get(tenant, entry.get("spec")).env or None) == _environment
    ]


def _parents(store: ClientStore, tenant: str, jids: list[int]) -> set[int]:
    parents: set[int] = set()
    for entry in store.info(tenant, jids, ["spec"]):
        spec_id = entry.get("spec") if entry else None
        if isinstance(spec_id, str) and spec_id:
            raw = store.spec(tenant, spec_id)
            if raw:
                parents.update(JobSpec.from_json(raw).depends_on)
    return parents
