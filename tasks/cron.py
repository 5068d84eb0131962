"""``picloud.cron_fire``: what beat sends for a cron; submits the cron's job once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import ClusterMode
from picloud_compat.cron.registry import CronNotFound, CronRegistry
from picloud_compat.messages import FIRE_TASK
from picloud_compat.runner import process
from picloud_compat.tasks.app import app

log = logging.getLogger("picloud.cron")


@app.task(name=FIRE_TASK, ignore_result=True)  # type: ignore[misc]
def cron_fire(tenant: str, label: str, scheduled: float | None = None) -> int | None:
    """Submit the cron's job for its scheduled time (`scheduled`, sent by beat; without
    it, the time due now), once per time however late the firing runs."""
    settings = process.worker_settings()
    store = process.cluster_store()
    client = Client(settings, store, tenant, ClusterMode(settings), notices=False, owns=False)
    try:
        slot = None if scheduled is None else datetime.fromtimestamp(float(scheduled), UTC)
        jid = CronRegistry(client).fire(label, slot)
    except CronNotFound:
        log.warning("cron %s/%s fired after it was deregistered; ignored", tenant, label)
        return None
    if jid is None:
        log.info("cron %s/%s: this scheduled time was already served", tenant, label)
    return jid
