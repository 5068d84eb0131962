"""Celery beat settings for RedBeat, shared by `picloud beat` and clients saving entries."""

from __future__ import annotations

from typing import Any

from picloud_compat.store import keys
from picloud_compat.store.redis.sentinel import SCHEME as SENTINEL_SCHEME
from picloud_compat.store.redis.sentinel import SentinelURL

MAX_LOOP_INTERVAL = 5
"""Seconds beat sleeps at most: new crons are picked up this fast, and a crashed beat's
lock (5x this) frees a standby beat after 25 s. At Celery's default (300 s) a cron
registered at run time would wait up to five minutes (ecosystem.md §5)."""


def beat_config(settings: Any) -> dict[str, Any]:
    """Celery settings beat and RedBeat need (also used to save entries)."""
    url = settings.server_url
    extra: dict[str, Any] = {}
    if url and url.startswith(SENTINEL_SCHEME):
        sentinel = SentinelURL.parse(url)
        extra["redbeat_redis_options"] = sentinel.redbeat_options()
        host, port = sentinel.sentinels[0]  # the sentinels themselves are in the options
        url = f"redis-sentinel://{host}:{port}/{sentinel.db}"
        extra["broker_url"], _ = sentinel.celery_broker()
    return {
        "broker_url": url,
        "redbeat_redis_url": url,
        **extra,
        "redbeat_key_prefix": keys.BEAT_PREFIX,
        "beat_max_loop_interval": MAX_LOOP_INTERVAL,
        "redbeat_lock_timeout": MAX_LOOP_INTERVAL * 5,
        "beat_scheduler": "picloud_compat.cron.scheduler:CronScheduler",
        "timezone": "UTC",
        "enable_utc": True,
    }
