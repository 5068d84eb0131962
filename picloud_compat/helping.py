"""Nested jobs without deadlock: a job waiting on other jobs runs them itself.

A pool of N processes deadlocks when N jobs each wait on a job queued behind them.
So when code *inside a job* waits (`cloud.result`, `join`, `iresult`) on jobs that are
still queued, the waiting process claims them (atomically, like any worker) and runs
them inline; their queued messages are then skipped by whichever worker gets them.
Jobs that are `waiting` on parents get their queued parents run the same way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from picloud_compat.execution import current_job
from picloud_compat.store.base import ChunkRef

if TYPE_CHECKING:
    from picloud_compat.client import Client

HELP_AFTER = 0.05
"""Seconds a nested wait gives other workers before running the awaited jobs itself."""
_MAX_DEPTH = 8

_runner: Any = None


def register_runner(runner: Any) -> None:
    global _runner
    _runner = runner


def helper() -> Helper | None:
    if _runner is None or current_job() is None:
        return None
    return Helper(_runner)


class Helper:
    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._since = time.monotonic()

    def help(self, client: Client, pending: set[int]) -> bool:
        """Run one runnable awaited job here; True if one ran."""
        if time.monotonic() - self._since < HELP_AFTER:
            return False
        candidates = sorted(pending)[:64]
        for _ in range(_MAX_DEPTH):
            statuses = client.store.statuses(client.tenant, candidates)
            queued = [j for j, s in zip(candidates, statuses, strict=True) if s == "queued"]
            if queued:
                self._runner.run(ChunkRef(client.tenant, queued[0], 1))
                return True
            waiting = [j for j, s in zip(candidates, statuses, strict=True) if s == "waiting"]
            if not waiting:
                return False
            candidates = sorted(_parents(client, waiting))[:64]
            if not candidates:
                return False
        return False


def _parents(client: Client, jids: list[int]) -> set[int]:
    parents: set[int] = set()
    for entry in client.store.info(client.tenant, jids, ["options"]):
        if entry and entry.get("options"):
            raw = client.store.options(client.tenant, entry["options"])
            if raw:
                parents.update(json.loads(raw).get("depends_on", []))
    return parents
