"""Shared fixtures: a private redis-server, real Celery workers, and clients in both modes.

Nothing here talks to the machine's shared Redis on 6379: the session starts its own
``redis-server`` on a free loopback port (installing Debian's package if it is missing,
and failing, never skipping, if that is impossible).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from picloud_compat.client import session as clients
from picloud_compat.client.jobs import Client
from picloud_compat.settings import Settings
from tests.harness import S3_ENV, Gateway, MotoServer, RedisServer, Worker

SIGNING_KEY = "test-signing-key-" + "0" * 32
ENV_DIR = Path(tempfile.gettempdir()) / f"picloud-test-envs-{os.getpid()}"
"""Where this session's workers build environments (``_env``): fresh, so builds are real."""
ADMIN_PASSWORD = "test-admin-password"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PICLOUD_CONFIG_DIR", str(Path(__file__).parent / ".no-config"))
    for key, value in S3_ENV.items():  # moto accepts any credentials; never use real ones
        os.environ[key] = value


def ensure_redis_server() -> None:
    """Install Debian's redis-server if it is missing; fail (never skip) without it."""
    if shutil.which("redis-server"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False)
    if not shutil.which("redis-server"):
        pytest.fail(
            "redis-server is required and could not be installed (apt-get install redis-server)"
        )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    ensure_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cluster_settings(redis_server: RedisServer, s3_server: MotoServer) -> Settings:
    return Settings(
        server_url=redis_server.url, signing_key=SIGNING_KEY, s3_endpoint_url=s3_server.url
    )


@pytest.fixture(scope="session")
def worker(
    redis_server: RedisServer, s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """A real prefork Celery worker on every queue, run from an empty directory."""
    w = Worker(
        redis_server.url,
        SIGNING_KEY,
        tmp_path_factory.mktemp("worker"),
        concurrency=2,
        env={"PICLOUD_S3_ENDPOINT_URL": s3_server.url, "PICLOUD_ENV_DIR": str(ENV_DIR), **S3_ENV},
    )
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from picloud_compat.simulator.cluster import LocalCluster

    files = tmp_path_factory.mktemp("simfiles")
    cluster = LocalCluster(
        Settings(signing_key=SIGNING_KEY, num_procs=2, files_dir=str(files), env_dir=str(ENV_DIR))
    )
    yield cluster
    cluster.close()


def _tenant() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def tenant() -> str:
    return _tenant()


def make_cluster_client(settings: Settings, tenant: str) -> Client:
    return clients.cluster_client(settings, tenant)


@contextmanager
def private_cluster(
    tmp_path: Path, tenant: str, concurrency: int = 2, **worker_env: str
) -> Iterator[tuple[RedisServer, Worker, Client]]:
    """A redis-server, a worker on c1 (2 processes) and a client of its own, for tests
    that stop, signal or count what the worker does (stopped by pid when the test ends)."""
    ensure_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    worker = Worker(
        server.url, SIGNING_KEY, tmp_path, concurrency=concurrency, queues="c1", env=worker_env
    )
    client = clients.cluster_client(
        Settings(server_url=server.url, signing_key=SIGNING_KEY), tenant
    )
    try:
        worker.start()
        yield server, worker, client
    finally:
        client.hub.close()
        worker.stop()
        server.stop()


def make_simulator_client(cluster: object, tenant: str) -> Client:
    """A client of `tenant` on the shared session simulator (closing it stops nothing)."""
    from picloud_compat.simulator.mode import SimulatorMode

    return SimulatorMode(cluster, owns=False).client(tenant, owns=False)  # type: ignore[arg-type]


@pytest.fixture(params=["simulator", "cluster", "isolated"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


class IsolatedCluster:
    """A cluster as a multi-tenant operator runs it: Redis behind a password that no
    tenant holds, workers running jobs in per-tenant executors, and the gateway as the
    only door for tenants."""

    def __init__(self, redis: RedisServer, worker: Worker, gateway: Gateway) -> None:
        self.redis, self.worker, self.gateway = redis, worker, gateway
        self.settings = Settings(server_url=redis.url, signing_key=SIGNING_KEY)

    def new_key(self, note: str = "test") -> tuple[str, str]:
        """A fresh API key and its secret, made the way the admin makes them."""
        from picloud_compat.accounts import AccountRegistry
        from picloud_compat.store.redis import RedisStore

        admin = RedisStore.from_url(self.redis.url, self.settings)
        try:
            return AccountRegistry(admin, self.settings).create_key(note)
        finally:
            admin.close()

    def client(self, api_key: str, secret: str) -> Client:
        """What a tenant holding (api_key, secret) gets: the gateway, nothing else."""
        from picloud_compat.client.remote import remote_client

        return remote_client(
            Settings(server_url=self.gateway.url, api_key=api_key, api_secretkey=secret)
        )


@pytest.fixture(scope="session")
def isolated_cluster(
    s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IsolatedCluster]:
    ensure_redis_server()
    from picloud_compat.errors import ConfigurationError
    from picloud_compat.runner.executor_pool import check_readable_by_executors

    try:  # executors run as per-tenant uids (we are root): fail clearly, never skip
        check_readable_by_executors()
    except ConfigurationError as exc:
        pytest.fail(f"tenant isolation cannot be tested here: {exc.parameter}")
    redis = RedisServer(tmp_path_factory.mktemp("redis-isolated"), password=secrets.token_hex(16))
    redis.start()
    s3 = {"PICLOUD_S3_ENDPOINT_URL": s3_server.url, **S3_ENV}
    worker = Worker(
        redis.url,
        SIGNING_KEY,
        tmp_path_factory.mktemp("worker-isolated"),
        concurrency=2,
        env={"PICLOUD_ISOLATION": "tenant", "PICLOUD_ENV_DIR": str(ENV_DIR), **s3},
    )
    gateway = Gateway(redis.url, SIGNING_KEY, tmp_path_factory.mktemp("gateway-isolated"), env=s3)
    try:
        worker.start()
        gateway.start()
        yield IsolatedCluster(redis, worker, gateway)
    finally:
        gateway.stop()
        worker.stop()
        redis.stop()


def make_isolated_client(cluster: IsolatedCluster) -> Client:
    """A client of a fresh API key that holds only that key: it talks to the gateway."""
    return cluster.client(*cluster.new_key("isolated test"))


@pytest.fixture
def client(mode: str, request: pytest.FixtureRequest, tenant: str) -> Iterator[Client]:
    """A `Client` in each mode, installed as the default so `cloud.*` uses it."""
    if mode == "cluster":
        request.getfixturevalue("worker")
        c = make_cluster_client(request.getfixturevalue("cluster_settings"), tenant)
    elif mode == "isolated":
        c = make_isolated_client(request.getfixturevalue("isolated_cluster"))
    else:
        c = make_simulator_client(request.getfixturevalue("local_cluster"), tenant)
    previous = clients.set_client(c)
    yield c
    clients.set_client(previous)
    c.hub.close()
    if mode != "simulator":
        c.store.close()


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory per test; in isolated mode one the jobs can write too (they run
    under their tenant's uid, which cannot enter pytest's private temp tree)."""
    if "mode" in request.fixturenames and request.getfixturevalue("mode") == "isolated":
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="picloud-isolated-test-"))
        path.chmod(0o777)
        request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
        return path
    return tmp_path_factory.mktemp(request.node.name[:40].replace("[", "-").replace("]", ""))


@pytest.fixture
def cloud(client: Client):  # type: ignore[no-untyped-def]
    import cloud as cloud_module

    return cloud_module


@pytest.fixture
def random_key() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="session")
def gateway(
    worker,
    redis_server: RedisServer,
    s3_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    g = Gateway(
        redis_server.url,
        SIGNING_KEY,
        tmp_path_factory.mktemp("gateway"),
        env={
            "PICLOUD_S3_ENDPOINT_URL": s3_server.url,
            "PICLOUD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # the suite signs in wrongly on purpose, fuzzes the sign-in form and pages a
            # million jobs, all from 127.0.0.1: the limits have their own tests and gateways
            "PICLOUD_SIGN_IN_ATTEMPTS": "1000000",
            "PICLOUD_DASHBOARD_RATE": "1000000",  # likewise the per-key request rate
        },
    )
    g.start()
    yield g
    g.stop()


@pytest.fixture
def account(cluster_settings: Settings):  # type: ignore[no-untyped-def]
    """A freshly created API key: (api_key, secret, a client acting as it)."""
    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.store.redis import RedisStore

    store = RedisStore.from_url(cluster_settings.server_url or "", cluster_settings)
    registry = AccountRegistry(store, cluster_settings)
    api_key, secret = registry.create_key("test")
    client = clients.cluster_client(cluster_settings.replace(gateway_url="http://unused"), api_key)
    yield api_key, secret, client
    client.hub.close()
    store.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(ENV_DIR, ignore_errors=True)  # environments the workers built
