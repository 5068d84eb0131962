"""Cron schedules with real cron semantics, stored in RedBeat.

Celery's own `crontab` differs from cron (day-of-month and day-of-week are ANDed;
no '7' for Sunday, no names in some fields), so schedules are evaluated with croniter,
in UTC, exactly as validated at registration. RedBeat stores entries as JSON and only
knows its own schedule types, so `install()` teaches its encoder and decoder this one;
every process that saves or runs entries (clients registering crons, beat) calls it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, schedstate
from croniter import croniter

from picloud_compat.cron.expressions import normalize

TYPE_TAG = "picloud-cron"


class CronSchedule(BaseSchedule):
    """A beat schedule with true cron semantics (croniter, UTC) instead of Celery's crontab."""

    def __init__(self, expr: str, nowfun: Any = None, app: Any = None) -> None:
        self.expr = normalize(expr)
        super().__init__(nowfun=nowfun, app=app)

    def now(self) -> datetime:
        """Current time in UTC, the zone cron expressions are evaluated in."""
        return datetime.now(UTC)

    def _next_after(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return croniter(self.expr, moment).get_next(datetime)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """Time until the next firing after `last_run_at` (negative if overdue)."""
        return self._next_after(last_run_at) - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        """Beat's question: fire now?, and seconds until it should ask again."""
        now = self.now()
        due_at = self._next_after(last_run_at)
        if due_at <= now:
            # One run, however many were missed while beat was down (no catch-up burst).
            return schedstate(True, max(0.0, (self._next_after(now) - now).total_seconds()))
        return schedstate(False, (due_at - now).total_seconds())

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.expr,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def __repr__(self) -> str:
        return f"<CronSchedule {self.expr!r} UTC>"


_installed = False


def install() -> None:
    """Teach RedBeat to store and load `CronSchedule` (idempotent)."""
    global _installed
    if _installed:
        return
    import redbeat.schedulers as schedulers
    from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder

    class Encoder(RedBeatJSONEncoder):
        def default(self, obj: Any) -> Any:
            if isinstance(obj, CronSchedule):
                return {"__type__": TYPE_TAG, "expr": obj.expr}
            return super().default(obj)

    class Decoder(RedBeatJSONDecoder):
        def dict_to_object(self, d: dict[str, Any]) -> Any:
            if d.get("__type__") == TYPE_TAG:
                return CronSchedule(d["expr"])
            return super().dict_to_object(d)

    schedulers.RedBeatJSONEncoder = Encoder  # type: ignore[misc]
    schedulers.RedBeatJSONDecoder = Decoder  # type: ignore[misc]
    _installed = True
