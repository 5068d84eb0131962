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
from picloud_compat.tenancy import SIMULATOR_TENANT, tenant_for

_client: Client | None = None
_parked: Client | None = None  # the simulator a setkey without server URL goes on with
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
    global _client, _cluster, _parked
    with _client_lock:
        previous, _client, _cluster = _client, None, settings
        drop = [previous]
        if not settings.simulated:
            drop.append(_parked)
            _parked = None
        elif previous is not None and previous.owns and _runs_a_simulator(previous):
            drop = [_parked]  # the running simulator goes on, for the key set now
            _parked = previous
    for client in drop:
        if client is not None:
            client.close()


def use_simulator() -> Client:
    """`cloud.start_simulator`: a fresh simulator from now on (the setkey is dropped)."""
    global _client, _cluster, _parked
    client = simulator_client(Settings.load(), "simulation")
    with _client_lock:
        drop = (_client, _parked)
        _client, _cluster, _parked = client, None, None
    for previous in drop:
        if previous is not None:
            previous.close()
    return client


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
        if _parked is not None and not _parked.closed:
            return _simulator_client_for(_parked, settings)
        return simulator_client(settings)
    if is_gateway_url(settings.server_url):
        return remote_client(settings)
    return authenticated_client(settings)


def _runs_a_simulator(client: Client) -> bool:
    from picloud_compat.simulator.mode import SimulatorMode

    return isinstance(client.mode, SimulatorMode) and client.connection_type == "simulation"


def _simulator_client_for(parked: Client, settings: Settings) -> Client:
    """A client on `parked`'s simulator for setkey's key: a key this simulator issued
    must have its secret and be active (InvalidCredentials otherwise); any other key
    runs as the simulator's own tenant."""
    from picloud_compat.simulator.mode import SimulatorMode

    assert isinstance(parked.mode, SimulatorMode)
    tenant = SIMULATOR_TENANT
    key = None if settings.api_key is None else str(settings.api_key)
    if key is not None and parked.store.account(key) is not None:
        AccountRegistry(parked.store, parked.settings).authenticate(key, settings.api_secretkey)
        tenant = key
    return parked.mode.client(tenant, owns=False)
