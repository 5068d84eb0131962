"""Celery settings for picloud-compat workers, derived from `Settings`.

Why each non-default matters:
- JSON only: no pickle crosses the broker; payloads live in Redis, sealed with HMAC.
- ``ack_emulation: False``: kombu's unacked bookkeeping costs ~0.7 ms per message and
  does not protect started or prefetched work anyway (feasibility.md T2, T6). The
  platform's own chunk ledger, leases and reaper make delivery durable instead, and
  without ack emulation there is no visibility timeout to re-run long jobs.
- ``task_acks_late`` with prefetch multiplier 1: a worker reserves only as many
  messages as it has free processes, so chunks are not hoarded behind a slow job.
- ``task_reject_on_worker_lost: False``: a lost process is handled by our recovery
  (attempt cap, restartable flag), not by Celery's one-shot requeue.
- ``worker_lost_wait: 1``: Celery reports a lost pool process only after waiting this
  long for a result it might still have sent (10 s by default); ours go to the job
  store, never through Celery, so the wait only delays recovery (`tasks.run`).
- priorities: ten steps, ``:`` separator, lower runs first (PiCloud's `_priority`).
- ``task_send_sent_event: False``: a late task-sent event would overwrite the
  job's function name (the shadow name) in Flower.
- ``imports``: the worker loads its lifecycle hooks (supervisor thread, registration)
  itself, so the ``tasks`` package never imports ``workers``.
- ``worker_pool``: Celery's prefork pool, whose idle processes also take fresh jobs
  without waiting for the message (`workers.pool`; ``-P prefork`` gives the plain one).
- worker events off by default: publishing them costs ~1 ms per message on this class
  of machine. Flower enables them on running workers by itself (its ``enable_events``
  option, on by default); ``PICLOUD_TASK_EVENTS=1`` forces them on.
"""

from __future__ import annotations

from typing import Any

from picloud_compat.config.beat import beat_config
from picloud_compat.config.compute_types import DEFAULT_PRIORITY, PRIORITY_SEP, PRIORITY_STEPS
from picloud_compat.settings import Settings
from picloud_compat.store.redis.sentinel import SCHEME as SENTINEL_SCHEME
from picloud_compat.store.redis.sentinel import SentinelURL

WORKER_MODULES = ["picloud_compat.workers.lifecycle"]
WORKER_LOST_WAIT = 1.0
"""Seconds Celery waits for a lost pool process's result before reporting it lost."""
FAST_START_POOL = "picloud_compat.workers.pool:TaskPool"
"""Celery's prefork pool whose idle processes also take fresh jobs (`workers.pool`)."""
"""Loaded by Celery when a worker starts (the ``imports`` setting): the supervisor."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's settings for the platform's app, from the platform's settings."""
    transport = {
        "priority_steps": list(PRIORITY_STEPS),
        "sep": PRIORITY_SEP,
        "queue_order_strategy": "priority",
        "ack_emulation": False,
        # Irrelevant without ack emulation (nothing is ever redelivered by kombu), kept
        # explicit so a long job can never be re-run by it; see tests/integration.
        "visibility_timeout": settings.visibility_timeout,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
    broker = settings.server_url
    if broker and broker.startswith(SENTINEL_SCHEME):
        broker, sentinel_options = SentinelURL.parse(broker).celery_broker()
        transport.update(sentinel_options)
    return {
        **beat_config(settings),
        "broker_url": broker,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_lost_wait": WORKER_LOST_WAIT,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "c1",
        "task_default_priority": DEFAULT_PRIORITY,
        "task_create_missing_queues": True,
        "task_send_sent_event": False,
        "worker_send_task_events": settings.task_events,
        "worker_redirect_stdouts_level": "INFO",
        "worker_hijack_root_logger": True,
        "worker_enable_remote_control": True,
        "imports": WORKER_MODULES,
        "worker_pool": FAST_START_POOL,
    }
