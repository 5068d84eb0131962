"""``import cloud``: PiCloud's API, on Celery + Redis or on the local simulator.

Every function is a short delegation to the current `Client`
(`picloud_compat.client.get_client`). Without configuration, jobs run on the
embedded simulator; `setkey` (or ``PICLOUD_SERVER_URL`` + ``PICLOUD_API_KEY``) points
them at a cluster.
"""

from __future__ import annotations

from typing import Any

from picloud_compat import __version__ as __version__
from picloud_compat import client as _clients
from picloud_compat.errors import CloudException, CloudTimeoutError
from picloud_compat.execution import current_job as _current_job
from picloud_compat.settings import Settings as _Settings
from picloud_compat.settings import getconfigpath
from picloud_compat.status import finished_statuses

__all__ = [
    "CloudException",
    "CloudTimeoutError",
    "c1",
    "c2",
    "call",
    "close",
    "config",
    "connection_info",
    "delete",
    "finished_statuses",
    "getconfigpath",
    "info",
    "iresult",
    "is_simulated",
    "join",
    "kill",
    "m1",
    "map",
    "result",
    "running_on_cloud",
    "s1",
    "setkey",
    "start_simulator",
    "status",
]

c1, c2, m1, s1, f2 = "c1", "c2", "m1", "s1", "f2"
_immutable = False


def call(func: Any, *args: Any, **kwargs: Any) -> int:
    """Run ``func(*args, **kwargs)`` as a job; return its jid. See the README for `_kwargs`."""
    return _clients.get_client().call(func, *args, **kwargs)


def map(func: Any, *iterables: Any, **kwargs: Any) -> list[int]:
    """One job per element (shorter iterables padded with None); jids in input order."""
    return _clients.get_client().map(func, *iterables, **kwargs)


def status(jids: Any) -> Any:
    """Status string of a jid, or a list of statuses for a list of jids."""
    return _clients.get_client().status(jids)


def info(jids: Any, info_requested: Any = None) -> dict[int, dict[str, Any]]:
    """{jid: {field: value}}; default fields stdout, stderr, status, runtime; 'all' for all."""
    return _clients.get_client().info(jids, info_requested)


def join(
    jids: Any,
    timeout: float | None = None,
    ignore_errors: bool = False,
    deadlock_check: bool = True,
) -> None:
    """Block until the jobs finish; raise CloudException for the first failed one."""
    _clients.get_client().join(jids, timeout, ignore_errors, deadlock_check)


def result(
    jids: Any,
    timeout: float | None = None,
    ignore_errors: bool = False,
    deadlock_check: bool = True,
) -> Any:
    """The return value of a job, or the list of values of a list of jobs (in order)."""
    return _clients.get_client().result(jids, timeout, ignore_errors, deadlock_check)


def iresult(
    jids: Any, timeout: float | None = None, num_in_parallel: int = 10, ignore_errors: bool = False
) -> Any:
    """Iterate results in jid order as they arrive; a failed job raises, then goes on."""
    return _clients.get_client().iresult(jids, timeout, num_in_parallel, ignore_errors)


def kill(jids: Any = None) -> None:
    """Kill jobs (all of this account's unfinished jobs if no jids are given)."""
    _clients.get_client().kill(jids)


def delete(jids: Any) -> None:
    """Remove finished jobs' results and output; raises for unfinished jobs."""
    _clients.get_client().delete(jids)


def close() -> bool:
    """Close the connection (or stop the simulator); the next call reopens it."""
    current = _clients.peek_client()
    return current.close() if current is not None else False


def connection_info() -> dict[str, Any]:
    return _clients.get_client().connection_info()


def is_simulated() -> bool:
    current = _clients.peek_client()
    if current is not None and not current.closed:
        return current.connection_type != "redis"
    return _Settings.load().simulated


def running_on_cloud() -> bool:
    """True inside a job (on a worker or in the simulator)."""
    return _current_job() is not None


def setkey(
    api_key: Any = None,
    api_secretkey: str | None = None,
    server_url: str | None = None,
    restart: bool = False,
    immutable: bool = False,
) -> None:
    """Use the cluster at `server_url` (a redis:// URL) as API key `api_key`."""
    global _immutable
    if _immutable:
        return
    settings = _Settings.load(
        api_key=None if api_key is None else str(api_key),
        api_secretkey=api_secretkey,
        server_url=server_url,
    ).replace(use_simulator=False)
    from picloud_compat.tenancy import tenant_for

    tenant = tenant_for(settings)
    current = _clients.peek_client()
    same = (
        current is not None
        and not current.closed
        and current.connection_type == "redis"
        and current.tenant == tenant
        and current.settings.server_url == settings.server_url
        and current.settings.api_secretkey == settings.api_secretkey
    )
    if not same or restart:
        new = _clients.Client.for_cluster(settings, tenant)
        try:
            from picloud_compat.accounts import AccountRegistry

            AccountRegistry(new.store.redis, settings).authenticate(tenant, settings.api_secretkey)  # type: ignore[attr-defined]
        except BaseException:
            new.close()
            raise
        previous = _clients.set_client(new)
        if previous is not None:
            previous.close()
    _immutable = immutable


def start_simulator(force_restart: bool = False) -> None:
    """Run jobs locally in processes, with no server (the embedded default)."""
    if _immutable:
        return
    current = _clients.peek_client()
    running = current is not None and not current.closed
    if running and current.connection_type == "simulation" and not force_restart:  # type: ignore[union-attr]
        return
    from picloud_compat.simulator import start_local_client

    previous = _clients.set_client(start_local_client(_Settings.load(), "simulation"))
    if previous is not None:
        previous.close()


from picloud_compat.config_object import ConfigSettings as _ConfigSettings  # noqa: E402

config = _ConfigSettings()

# PiCloud made its submodules available after a plain `import cloud`.
from cloud import account, cron, files, mp, pool_interface, rest  # noqa: E402,F401
