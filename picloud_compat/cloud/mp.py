"""``cloud.mp``: the same API, always on local processes (PiCloud's multiprocessing mode)."""

from __future__ import annotations

import threading

from picloud_compat.client.jobs import Client
from picloud_compat.errors import CloudException, CloudTimeoutError
from picloud_compat.facade import JobApi
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
_client: Client | None = None
_lock = threading.Lock()


def _get() -> Client:
    global _client
    with _lock:
        if _client is None or _client.closed:
            from picloud_compat.client.session import simulator_client

            _client = simulator_client(Settings.load(), "multiprocessing")
        return _client


_api = JobApi(_get)
call = _api.call
map = _api.map
status = _api.status
info = _api.info
join = _api.join
result = _api.result
iresult = _api.iresult
kill = _api.kill
delete = _api.delete
connection_info = _api.connection_info


def close() -> bool:
    """Stop cloud.mp's processes; the next call starts new ones."""
    return _client.close() if _client is not None else False
