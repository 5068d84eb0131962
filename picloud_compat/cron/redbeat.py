"""Cron firings on a cluster: one RedBeat entry per cron, read by ``picloud beat``."""

from __future__ import annotations

from typing import Any

from picloud_compat.config.beat import beat_config
from picloud_compat.cron.schedule import CronSchedule, install
from picloud_compat.messages import FIRE_TASK
from picloud_compat.settings import Settings


def beat_entry_name(tenant: str, label: str) -> str:
    """RedBeat's name for a tenant's cron."""
    return f"{tenant}:{label}"


class RedBeatEntries:
    """Saves and deletes the RedBeat entries beat fires `picloud.cron_fire` from."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None

    def _beat(self) -> Any:
        """A Celery app configured just enough to save and delete RedBeat entries."""
        if self._app is None:
            from celery import Celery

            install()
            app = Celery("picloud-cron-client", set_as_current=False)
            app.conf.update(beat_config(self.settings))
            self._app = app
        return self._app

    def save(self, tenant: str, label: str, expr: str, queue: str) -> None:
        """Start firing the cron on its compute type's queue."""
        from redbeat.schedulers import RedBeatSchedulerEntry

        RedBeatSchedulerEntry(
            beat_entry_name(tenant, label),
            FIRE_TASK,
            CronSchedule(expr),
            args=[tenant, label],
            options={"queue": queue, "shadow": f"cron:{label}"},
            app=self._beat(),
        ).save()

    def delete(self, tenant: str, label: str) -> None:
        """Stop firing the cron (no error if the entry is already gone)."""
        from redbeat.schedulers import RedBeatSchedulerEntry

        app = self._beat()
        key = app.conf.redbeat_key_prefix + beat_entry_name(tenant, label)
        try:
            RedBeatSchedulerEntry.from_key(key, app=app).delete()
        except KeyError:
            pass
