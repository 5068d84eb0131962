"""``cloud.mp``: the same API, always on local processes (PiCloud's multiprocessing mode)."""

from __future__ import annotations

import threading
from typing import Any

from picloud_compat.errors import CloudException, CloudTimeoutError
from picloud_compat.settings import Settings
from picloud_compat.status import finished_statuses

__all__ = [
    "CloudException",
    "CloudTimeoutError",
    "call",
    "close",
    "connection_info",
    "delete",
    "finished_statuses",
    "info",
    "iresult",
    "join",
    "kill",
    "map",
    "result",
    "status",
]

c1, c2, m1 = "c1", "c2", "m1"
_client: Any = None
_lock = threading.Lock()


def _get() -> Any:
    global _client
    with _lock:
        if _client is None or _client.closed:
            from picloud_compat.simulator import start_local_client

            _client = start_local_client(Settings.load(), "multiprocessing")
        return _client


def call(func: Any, *args: Any, **kwargs: Any) -> int:
    return _get().call(func, *args, **kwargs)


def map(func: Any, *iterables: Any, **kwargs: Any) -> list[int]:
    return _get().map(func, *iterables, **kwargs)


def status(jids: Any) -> Any:
    return _get().status(jids)


def info(jids: Any, info_requested: Any = None) -> dict[int, dict[str, Any]]:
    return _get().info(jids, info_requested)


def join(
    jids: Any,
    timeout: float | None = None,
    ignore_errors: bool = False,
    deadlock_check: bool = True,
) -> None:
    _get().join(jids, timeout, ignore_errors, deadlock_check)


def result(
    jids: Any,
    timeout: float | None = None,
    ignore_errors: bool = False,
    deadlock_check: bool = True,
) -> Any:
    return _get().result(jids, timeout, ignore_errors, deadlock_check)


def iresult(
    jids: Any, timeout: float | None = None, num_in_parallel: int = 10, ignore_errors: bool = False
) -> Any:
    return _get().iresult(jids, timeout, num_in_parallel, ignore_errors)


def kill(jids: Any = None) -> None:
    _get().kill(jids)


def delete(jids: Any) -> None:
    _get().delete(jids)


def close() -> bool:
    return _client.close() if _client is not None else False


def connection_info() -> dict[str, Any]:
    return _get().connection_info()
