"""Which client `cloud.*` uses: the one module that knows modes, stores and credentials.

Without configuration the default client runs on the embedded simulator;
``setkey``/``PICLOUD_SERVER_URL`` point it at a cluster, whose key is authenticated
before the client is handed out. A ``setkey`` without a server URL keeps the running
simulator (its jobs, files and the keys `cloud.account` made on it): a key it issued
is checked there and acted as; any other key (a PiCloud script's own) runs as the
simulator's tenant, as PiCloud's simulator ignored credentials. Inside a job,
``cloud.*`` acts as the job's own tenant through the factory the job process
installed (`runner.process`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from picloud_compat import logs
from picloud_compat.accounts import AccountRegistry
from picloud_compat.client import cards
from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import ClusterMode
from picloud_compat.client.remote import is_gateway_url, remote_client
from picloud_compat.errors import CloudException
from picloud_compat.runner.execution import current_job
from picloud_compat.settings import Settings
from picloud_compat.store.contract import RecordStore
from picloud_compat.tenancy import tenant_for

_client: Client | None = None
_kept: _KeptSimulator | None = None  # the simulator setkeys without server URL go on with
_cluster: Settings | None = None  # what setkey chose: connected to on first use
_client_lock = threading.RLock()
_job_client_factory: Callable[[str], Client] | None = None
_job_clients: dict[str, Client] = {}


def cluster_client(settings: Settings, tenant: str, *, notices: bool = True) -> Client:
    """A client acting as `tenant` on the cluster's Redis (not authenticated)."""
    from picloud_compat.store.redis import RedisStore  # redis-py: only for a cluster

    store = RedisStore.from_url(settings.server_url or "", settings)
    return Client(settings, store, tenant, ClusterMode(settings), notices=notices)


def authenticated_client(settings: Settings) -> Client:
    """A cluster client for the configured key, after checking its secret and that
    it is active (InvalidCredentials otherwise)."""
    client = cluster_client(settings, tenant_for(settings))
    try:
        AccountRegistry(client.store, settings).check_client(client.tenant, settings.api_secretkey)
    except BaseException:
        client.close()
        raise
    return client


def simulator_client(settings: Settings, connection_type: str = "simulation") -> Client:
    """A client on a fresh simulator, which closes with it."""
    from picloud_compat.simulator.mode import SimulatorMode

    return SimulatorMode.start(settings, connection_type).client()


def admin_store() -> tuple[RecordStore, Settings]:
    """Where API keys live, for `cloud.account`: the cluster's Redis when one is
    configured (the admin needs no API key of its own), else the simulator's store."""
    if current_job() is not None:
        raise CloudException("cloud.account manages API keys; it is not available inside jobs")
    settings = Settings.load()
    if settings.simulated:
        client = get_client()
        return client.store, client.settings
    if not settings.signing_key:
        raise CloudException(
            "managing API keys needs the cluster's signing key (PICLOUD_SIGNING_KEY): it is "
            "the administrator's, not a tenant's"
        )
    from picloud_compat.store.redis import RedisStore

    return RedisStore.from_url(settings.server_url or "", settings), settings


def set_job_client_factory(factory: Callable[[str], Client] | None) -> None:
    """Installed by job processes: jobs calling `cloud.*` get a client for their tenant."""
    global _job_client_factory
    _job_client_factory = factory
    _job_clients.clear()


def get_client() -> Client:
    """The client `cloud.*` uses here: the job's tenant inside a job, else the default."""
    job = current_job()
    if job is not None and _job_client_factory is not None:
        client = _job_clients.get(job.tenant)
        if client is None:
            client = _job_clients[job.tenant] = _job_client_factory(job.tenant)
        return client
    global _client
    with _client_lock:
        if _client is None or _client.closed:
            _client = _default_client()
        return _client


def set_client(client: Client | None) -> Client | None:
    """Replace the default client; returns the previous one (not closed)."""
    global _client
    with _client_lock:
        previous, _client = _client, client
        return previous


def peek_client() -> Client | None:
    """The default client if one was made (never creates one)."""
    return _client


cards.current_source = peek_client  # a jid's card reads through the current client


def use_cluster(settings: Settings) -> None:
    """`cloud.setkey`: use this cluster and key from the next call on. Connecting and
    checking the key wait for that first call (as PiCloud's setkey did), so a script
    can set its key and still run offline on the simulator."""
    global _client, _cluster, _kept
    with _client_lock:
        previous, _client, _cluster = _client, None, settings
        drop: list[Client | _KeptSimulator | None] = [previous, _kept]
        if not settings.simulated:
            _kept = None
        elif _kept is not None and _kept.alive:
            drop = [] if _kept.holds(previous) else [previous]
        elif previous is not None and previous.owns and _runs_a_simulator(previous):
            drop = [_kept]  # the running simulator goes on, for the key set now
            _kept = _KeptSimulator(previous)
        else:
            _kept = None
    for item in drop:
        if item is not None:
            item.close()


def use_simulator(force_restart: bool = False) -> Client:
    """`cloud.start_simulator`: the simulator as its own tenant from now on (setkey's
    key is dropped): the one setkey kept running, else (or if `force_restart`) a fresh
    one."""
    global _client, _cluster, _kept
    with _client_lock:
        if not force_restart and _kept is not None and _kept.alive:
            _client, _cluster = _kept.owner, None
            return _kept.owner
    client = simulator_client(Settings.load(), "simulation")
    with _client_lock:
        drop = (_client, _kept)
        _client, _cluster, _kept = client, None, None
    for previous in drop:
        if previous is not None:
            previous.close()
    return client


def close_default() -> bool:
    """`cloud.close`: close the default client, and the simulator setkey kept running
    (with the other keys' clients on it) when the default client is on it; False if
    nothing was open."""
    global _kept
    with _client_lock:
        current, kept = _client, _kept
        if kept is not None and (current is None or kept.holds(current)):
            _kept = None
        else:
            kept = None
    closed = current.close() if current is not None else False
    if kept is not None and kept.alive:
        kept.close()
        closed = True
    return closed


def forget_cluster() -> None:
    """Drop setkey's choice: the default client follows the settings again."""
    global _cluster
    with _client_lock:
        _cluster = None


def chosen_cluster() -> Settings | None:
    """The cluster setkey chose, if any (connected to or not yet)."""
    return _cluster


def _default_client() -> Client:
    settings = _cluster or Settings.load()
    logs.configure(settings)
    if settings.simulated:
        if _kept is not None and _kept.alive:
            return _kept.client_for(settings)
        return simulator_client(settings)
    if is_gateway_url(settings.server_url):
        return remote_client(settings)
    return authenticated_client(settings)


def _runs_a_simulator(client: Client) -> bool:
    from picloud_compat.simulator.mode import SimulatorMode

    return isinstance(client.mode, SimulatorMode) and client.connection_type == "simulation"


class _KeptSimulator:
    """The simulator that setkeys without a server URL go on with, and a client per key
    acted as on it. Switching keys leaves the other keys' clients open, so waits,
    iresults and callbacks on their jobs go on, as the jobs do; all close together."""

    def __init__(self, owner: Client) -> None:
        from picloud_compat.simulator.mode import SimulatorMode

        assert isinstance(owner.mode, SimulatorMode)
        self.owner = owner  # the simulator's own tenant; closing it stops the simulator
        self.mode = owner.mode
        self.others: dict[str, Client] = {}

    @property
    def alive(self) -> bool:
        return not self.owner.closed

    def holds(self, client: Client | None) -> bool:
        return client is self.owner or any(c is client for c in self.others.values())

    def client_for(self, settings: Settings) -> Client:
        """A client for setkey's key: a key this simulator issued must have its secret
        and be active (InvalidCredentials otherwise); any other key runs as the
        simulator's own tenant."""
        key = None if settings.api_key is None else str(settings.api_key)
        if key is None or self.owner.store.account(key) is None:
            return self.owner
        AccountRegistry(self.owner.store, self.owner.settings).authenticate(
            key, settings.api_secretkey
        )
        client = self.others.get(key)
        if client is None or client.closed:
            client = self.others[key] = self.mode.client(key, owns=False)
        return client

    def close(self) -> None:
        for client in self.others.values():
            client.close()
        self.owner.close()
