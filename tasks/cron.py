"""``picloud.cron_fire``: what beat sends for a cron; submits the cron's job once."""

from __future__ import annotations

import logging

from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import ClusterMode
from picloud_compat.cron.registry import CronNotFound, CronRegistry
from picloud_compat.messages import FIRE_TASK
from picloud_compat.runner import process
from picloud_compat.tasks.app import app

log = logging.getLogger("picloud.cron")


@app.task(name=FIRE_TASK, ignore_result=True)  # type: ignore[misc]
def cron_fire(tenant: str, label: str) -> int | None:
    """Submit the cron's job for the scheduled time that is due now (once per time)."""
    settings = process.worker_settings()
    store = process.cluster_store()
    client = Client(settings, store, tenant, ClusterMode(settings), notices=False, owns=False)
    try:
        jid = CronRegistry(client).fire(label)
    except CronNotFound:
        log.warning("cron %s/%s fired after it was deregistered; ignored", tenant, label)
        return None
    if jid is None:
        log.info("cron %s/%s: this scheduled time was already served", tenant, label)
    return jid
