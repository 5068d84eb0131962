"""``cloud.cron``: run a function on a cron schedule (UTC).

On a cluster, Celery beat (``picloud beat``, RedBeat) fires crons; on the simulator a
clock thread does, while the script runs. Each firing is an ordinary job with a jid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from picloud_compat.client.session import get_client
from picloud_compat.cron.registry import CronRegistry

__all__ = ["deregister", "info", "list", "manual_run", "register"]


def _registry() -> CronRegistry:
    return CronRegistry(get_client())


def register(
    func: Callable[[], Any], label: str, schedule: str | Sequence[object], **reserved_kwargs: Any
) -> str:
    """Run `func()` on `schedule` ('min hour day month weekday', UTC) as cron `label`."""
    return _registry().register(func, label, schedule, **reserved_kwargs)


def deregister(label: str) -> None:
    """Stop and remove cron `label`."""
    _registry().deregister(label)


def list() -> list[str]:
    """Labels of this API key's crons."""
    return _registry().list()


def info(label: str) -> dict[str, Any]:
    """{label, schedule, last_run, last_jid, created, creator_host, func_name}."""
    return _registry().info(label)


def manual_run(label: str) -> int:
    """Run the cron's function now, as a normal job; returns its jid."""
    jid = _registry().run(label)
    assert jid is not None
    return jid
