"""Cron firings on the simulator: a thread that fires due crons from the records.

Once a second it reads every tenant's cron records and serves the latest scheduled
time that has not been served yet (one firing after the simulator was idle, not one
per missed slot, as beat does). A cron's first firing is its first scheduled time after
it was registered, as with RedBeat. `CronRegistry.run` marks each scheduled time as served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from picloud_compat.client.jobs import Client
from picloud_compat.cron.expressions import previous_fire
from picloud_compat.cron.registry import CronNotFound, CronRegistry
from picloud_compat.store.contract import RecordStore

log = logging.getLogger("picloud.cron")

TICK = 1.0
"""Seconds between looks at the crons (cron's own resolution is a minute)."""


class CronClock(threading.Thread):
    """Fires due crons of every tenant through a client for that tenant."""

    def __init__(self, store: RecordStore, client_for: Callable[[str], Client]) -> None:
        super().__init__(name="picloud-cron-clock", daemon=True)
        self.store = store
        self.client_for = client_for
        self.started_at = datetime.now(UTC)
        self._stopping = threading.Event()

    def run(self) -> None:
        """Tick until stopped."""
        while not self._stopping.wait(TICK):
            try:
                self.tick(datetime.now(UTC))
            except Exception:
                log.exception("cron clock tick failed")

    def tick(self, now: datetime) -> list[int]:
        """Fire every cron whose latest scheduled time (after the clock started) was not
        served yet; returns the jids submitted."""
        fired = []
        for tenant in self.store.record_owners("cron"):
            registry = CronRegistry(self.client_for(tenant))
            for label in self.store.record_labels(tenant, "cron"):
                record = self.store.record(tenant, "cron", label)
                if record is None:
                    continue
                due = previous_fire(record["schedule"], now)
                created = datetime.fromtimestamp(float(record.get("created", 0)), UTC)
                if due < max(self.started_at, created):
                    continue  # a slot before the cron (or this simulator) existed
                try:
                    jid = registry.run(label, due)
                except CronNotFound:
                    continue  # deregistered meanwhile
                if jid is not None:
                    fired.append(jid)
        return fired

    def stop(self) -> None:
        """Stop ticking."""
        self._stopping.set()


class ClockBeat:
    """The simulator's `CronBeat`: the clock reads the records, so saving one is enough."""

    def __init__(self, start_clock: Callable[[], None]) -> None:
        self._start_clock = start_clock

    def save(self, tenant: str, label: str, expr: str, queue: str) -> None:
        """Make sure the clock runs; it finds the new record on its next tick."""
        self._start_clock()

    def delete(self, tenant: str, label: str) -> None:
        """Nothing to do: the record is removed by the registry."""
