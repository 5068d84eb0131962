"""The Celery app: ``celery -A picloud_compat.tasks.app worker -Q c2``.

Settings come from the environment / cloudconf.py (`Settings.load`), so ops configure
workers with ``PICLOUD_SERVER_URL`` and ``PICLOUD_SIGNING_KEY``. The worker's
lifecycle hooks are loaded through Celery's ``imports`` setting, not imported here.
"""

from __future__ import annotations

from celery import Celery

from picloud_compat.config.celeryconfig import celery_config
from picloud_compat.settings import Settings

settings = Settings.load()
app = Celery("picloud")
app.conf.update(celery_config(settings))

# Registered for their side effects: the tasks.
from picloud_compat.cron.schedule import install as _install_cron_schedule  # noqa: E402
from picloud_compat.tasks import cron as _cron  # noqa: E402,F401
from picloud_compat.tasks import run as _run  # noqa: E402,F401

_install_cron_schedule()  # beat stores CronSchedule entries in RedBeat
