"""``picloud.cron_fire``: what beat sends for a cron; submits the cron's job once."""

from __future__ import annotations

import logging

from picloud_compat.cron.registry import FIRE_TASK, CronNotFound, CronRegistry
from picloud_compat.tasks.app import app
from picloud_compat.workers import runtime

log = logging.getLogger("picloud.cron")


@app.task(name=FIRE_TASK, ignore_result=True)
def cron_fire(tenant: str, label: str) -> int | None:
    client = runtime.tenant_client(tenant)
    try:
        jid = CronRegistry(client).fire(label)
    except CronNotFound:
        log.warning("cron %s/%s fired after it was deregistered; ignored", tenant, label)
        return None
    if jid is None:
        log.info("cron %s/%s: this scheduled time was already served", tenant, label)
    return jid
