"""Before jobs wait for nobody: who serves a compute type, checked at submit.

Submitting to a type no live worker serves used to wait forever in silence; a worker
on other Python or cloudpickle versions failed every job later with an unpickling
error. Both are known from the workers' registrations, so the client looks (once per
type every 30 s) and says so at once: a warning when nobody serves the type yet (one
may be starting), an error naming both versions when nobody can load its jobs.
"""

from __future__ import annotations

import logging
import time
import warnings

from picloud_compat.errors import CloudPicklingError, NoWorkersWarning
from picloud_compat.signing import RUNTIME
from picloud_compat.store.contract import ClientStore
from picloud_compat.store.records import QueueService

log = logging.getLogger("picloud.client")

RECHECK_AFTER = 30.0
"""Seconds a compute type's answer is trusted before the registrations are read again."""


class Availability:
    """Per compute type: whether live workers serve it, in this client's runtime."""

    def __init__(self, store: ClientStore) -> None:
        self._store = store
        self._checked: dict[str, tuple[float, QueueService]] = {}

    def check(self, compute_type: str, cores: int = 1) -> None:
        """Warn if no worker serves `compute_type`; CloudPicklingError if none runs this
        client's Python and cloudpickle versions; ValueError if a job of `cores` cores
        would not fit on any of them."""
        now = time.monotonic()
        checked, service = self._checked.get(compute_type, (-RECHECK_AFTER, QueueService(0)))
        if now - checked >= RECHECK_AFTER:
            service = self._look(compute_type)
            self._checked[compute_type] = (now, service)
        if cores > service.largest > 0:
            raise ValueError(
                f"_cores={cores}: the largest worker serving {compute_type!r} has "
                f"{service.largest} processes, so the job could never start. Ask for at most "
                f"{service.largest}, or start a worker with `--concurrency {cores}` or more"
            )

    def _look(self, compute_type: str) -> QueueService:
        service = self._store.service(compute_type)
        if service.processes == 0:
            message = (
                f"no live worker serves compute type {compute_type!r}: its jobs wait until "
                f"one starts (`picloud worker --type {compute_type}`; `picloud status` lists "
                "what is served)"
            )
            warnings.warn(message, NoWorkersWarning, stacklevel=5)
            log.warning("%s", message)
        elif service.runtimes and RUNTIME not in service.runtimes:
            raise CloudPicklingError(
                f"the workers serving {compute_type!r} run {', '.join(service.runtimes)} but "
                f"this client runs {RUNTIME}: functions pickled here would not load there. "
                "Use the same Python (major.minor) and cloudpickle versions as the workers"
            )
        return service
