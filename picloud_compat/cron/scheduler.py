"""`CronScheduler`: RedBeat's scheduler, telling each cron firing which time it serves.

A firing waits in its compute type's queue like any job. If it waits past the next
scheduled time, a task that worked out "the slot due now" when it finally ran would
serve the later slot, and the earlier one would never run. So beat names the slot when
it sends the firing (``scheduled``, Unix seconds), and the task serves exactly that one,
once (a marker per slot: two beats or a redelivery cannot serve it twice).

Catch-up rule: a firing that is late still runs, for its own slot, however late; but
while beat itself is down nothing is sent, and when it comes back it sends one firing,
for the latest slot that passed (no burst of missed ones), as cron does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from redbeat.schedulers import RedBeatScheduler

from picloud_compat.cron.expressions import previous_fire
from picloud_compat.cron.schedule import CronSchedule


class CronScheduler(RedBeatScheduler):  # type: ignore[misc]
    """Adds the scheduled time to the firings of `CronSchedule` entries."""

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        """Send the firing with ``scheduled`` = the slot that is due now."""
        if not isinstance(entry.schedule, CronSchedule):
            return super().apply_async(entry, producer, advance, **kwargs)
        slot = previous_fire(entry.schedule.expr, datetime.now(UTC)).timestamp()
        entry = self.reserve(entry) if advance else entry
        # what sending reads of an entry, with the slot added (the stored entry is left
        # as it is: RedBeat entries cannot be copied)
        firing = SimpleNamespace(
            name=entry.name,
            task=entry.task,
            args=entry.args,
            kwargs={**(entry.kwargs or {}), "scheduled": slot},
            options=entry.options,
        )
        return super().apply_async(firing, producer, advance=False, **kwargs)
