"""Riding out a job store outage (a Redis restart, a failover, a full Redis refusing
writes) instead of dropping work: outcomes already computed are kept and recorded once
the store is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from picloud_compat.errors import ConnectionFailed

OUTAGE_RETRY = 30.0
"""Seconds claims and result writes are retried while the job store is unreachable."""
OUTCOME_RETRY = 300.0
"""Seconds finished outcomes are retried while the store is unreachable or refuses writes."""

T = TypeVar("T")


def retrying(
    operation: Callable[..., T], *args: Any, patience: float = OUTAGE_RETRY, **kwargs: Any
) -> T:
    """`operation(*args, **kwargs)`, retried every 0.5 s for `patience` seconds while
    the store is unreachable (then ConnectionFailed)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return operation(*args, **kwargs)
        except ConnectionFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
