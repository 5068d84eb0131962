"""``import cloud``: PiCloud's API, on Celery + Redis or on the local simulator.

Every function is a short delegation to the current `Client`
(`picloud_compat.client.session.get_client`). Without configuration, jobs run on the
embedded simulator; `setkey` (or ``PICLOUD_SERVER_URL`` + ``PICLOUD_API_KEY``) points
them at a cluster.
"""

from __future__ import annotations

from typing import Any

from picloud_compat import __version__ as __version__
from picloud_compat.client import session as _session
from picloud_compat.client.live_output import enable_output
from picloud_compat.errors import CloudException, CloudTimeoutError
from picloud_compat.facade import JobApi
from picloud_compat.runner.execution import current_job as _current_job
from picloud_compat.settings import Settings as _Settings
from picloud_compat.settings import getconfigpath
from picloud_compat.status import finished_statuses
from picloud_compat.tenancy import tenant_for, validate_tenant

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
    "enable_output",
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


_api = JobApi(_session.get_client)
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
    """Close the connection (or stop the simulator); the next call reopens it."""
    return _session.close_default()


def is_simulated() -> bool:
    """True when jobs run on the embedded simulator rather than a cluster."""
    current = _session.peek_client()
    if current is not None and not current.closed:
        return current.connection_type != "redis"
    chosen = _session.chosen_cluster()  # setkey's, not connected to yet
    return (chosen or _Settings.load()).simulated  # setkey without a server: simulated


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
    """Use the cluster at `server_url` (a redis:// URL) as API key `api_key`.

    As in PiCloud, nothing connects yet: the first call connects and checks the key
    (a wrong secret or a deactivated key raises InvalidCredentials there)."""
    global _immutable
    if _immutable:
        return
    settings = _Settings.load(
        api_key=None if api_key is None else str(api_key),
        api_secretkey=api_secretkey,
        server_url=server_url,
    ).replace(use_simulator=False)
    if settings.api_key is None:
        tenant_for(settings)  # says what is missing
    validate_tenant(str(settings.api_key))  # the rest (signing key, secret) at first use
    chosen = _session.chosen_cluster()
    current = _session.peek_client()
    if restart or chosen != settings or current is None or current.closed:
        _session.use_cluster(settings)  # connects and checks the key on first use
    _immutable = immutable


def start_simulator(force_restart: bool = False) -> None:
    """Run jobs locally in processes, with no server (the embedded default)."""
    if _immutable:
        return
    current = _session.peek_client()
    running = current is not None and not current.closed
    keyed = _session.chosen_cluster() is not None  # setkey's key: dropped
    if running and current.connection_type == "simulation" and not (force_restart or keyed):  # type: ignore[union-attr]
        return
    _session.use_simulator(force_restart)


from picloud_compat.config_object import ConfigSettings as _ConfigSettings  # noqa: E402

config = _ConfigSettings()

# PiCloud made its submodules available after a plain `import cloud`.
from cloud import account, cloud, cron, environment, files, mp, pool_interface, rest  # noqa: E402,F401
