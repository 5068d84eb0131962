"""Cron expressions: validated and evaluated with croniter, in UTC, as cron does.

Kept apart from `schedule` (beat's schedule class) so clients and the simulator's clock
use them without importing Celery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from croniter import croniter


def normalize(schedule: str | Sequence[object]) -> str:
    """A validated cron expression: 5 fields (minute hour day month weekday), or 6 with
    a trailing seconds field. Raises ValueError naming the problem."""
    if not isinstance(schedule, str):
        if isinstance(schedule, Sequence) and not isinstance(schedule, bytes):
            schedule = " ".join(str(part) for part in schedule)
        else:
            raise TypeError(
                f"schedule must be a cron string or a list of 5 fields, got {schedule!r}"
            )
    expr = " ".join(schedule.split())
    fields = expr.split(" ") if expr else []
    if len(fields) not in (5, 6):
        raise ValueError(
            f"schedule {schedule!r} must have 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}"
        )
    if not croniter.is_valid(expr):
        raise ValueError(f"schedule {schedule!r} is not a valid cron expression")
    return expr


def previous_fire(expr: str, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (the firing being served).

    croniter's `get_prev` is strictly before its start, so the start is a microsecond
    after `now` (a whole second would return the next slot up to a second early)."""
    return croniter(expr, now + timedelta(microseconds=1)).get_prev(datetime)
