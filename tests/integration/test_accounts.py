"""API keys: hashed secrets, setkey checks, deactivation refused everywhere."""

from __future__ import annotations

import pytest

import cloud
from picloud_compat.accounts import InvalidCredentials
from picloud_compat.client import session as clients
from tests import jobfuncs as jf
from tests.conftest import ADMIN_PASSWORD, SIGNING_KEY
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cluster_env(monkeypatch, redis_server, s3_server, worker):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PICLOUD_SERVER_URL", redis_server.url)
    monkeypatch.setenv("PICLOUD_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("PICLOUD_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("PICLOUD_S3_ENDPOINT_URL", s3_server.url)
    previous = clients.set_client(None)
    yield
    clients.forget_cluster()
    current = clients.set_client(previous)
    if current is not None:
        current.close()


def test_keys_lifecycle_and_setkey(cluster_env, redis_server):
    created = cloud.account.create_key("admin", ADMIN_PASSWORD, note="ci")
    key, secret = created["api_key"], created["api_secretkey"]
    assert key in cloud.account.list_keys("admin", ADMIN_PASSWORD)
    assert cloud.account.get_key("admin", ADMIN_PASSWORD, key)["active"] is True

    cloud.setkey(key, secret)
    assert cloud.is_simulated() is False
    assert cloud.connection_info()["api_key"] == key
    assert cloud.result(cloud.call(jf.add, 2, 3), timeout=30) == 5

    # the secret is stored only as a keyed hash
    dump = b"".join(
        v
        for k in redis_server.client().keys("pc:accounts*")
        for v in ([redis_server.client().dump(k) or b""])
    )
    assert secret.encode() not in dump

    # setkey connects on first use, as PiCloud's did: the first call is refused
    cloud.setkey(key, "wrong-secret")
    with pytest.raises(InvalidCredentials):
        cloud.status(1)
    cloud.setkey("424242", secret)
    with pytest.raises(InvalidCredentials):
        cloud.call(jf.noop)
    with pytest.raises(InvalidCredentials):
        cloud.account.create_key("admin", "not-the-password")


def test_deactivated_key_is_refused_everywhere(cluster_env, gateway):
    import httpx

    created = cloud.account.create_key("admin", ADMIN_PASSWORD)
    key, secret = created["api_key"], created["api_secretkey"]
    cloud.setkey(key, secret)
    blocker = cloud.call(jf.sleep, 1)
    queued = cloud.call(jf.noop, 1, _depends_on=blocker)  # still waiting when we deactivate
    wait_for(lambda: cloud.status(blocker) == "processing", 30, "the blocker to start")
    cloud.account.deactivate_key("admin", ADMIN_PASSWORD, key)

    with pytest.raises(InvalidCredentials):
        cloud.call(jf.noop)  # an existing client can no longer submit
    with pytest.raises(cloud.CloudException, match="deactivated") as info:
        cloud.result(queued, timeout=30)  # its queued jobs never run (running ones finish)
    assert cloud.status(blocker) == "done"
    assert info.value.status == "error"
    assert httpx.get(f"{gateway.url}/r", auth=(key, secret)).status_code == 401
    cloud.setkey(key, secret, restart=True)
    with pytest.raises(InvalidCredentials):
        cloud.call(jf.noop)  # refused at the first call after setkey

    cloud.account.activate_key("admin", ADMIN_PASSWORD, key)
    cloud.setkey(key, secret, restart=True)
    assert cloud.result(cloud.call(jf.add, 1, 1), timeout=30) == 2


def test_setkey_then_the_simulator_works_offline(monkeypatch):
    """PiCloud scripts often set their key and then start the simulator: nothing may
    connect before the first call, so this works with no server reachable."""
    monkeypatch.delenv("PICLOUD_SERVER_URL", raising=False)
    previous = clients.set_client(None)
    try:
        cloud.setkey("1001", "secret")  # no server anywhere: the simulator runs the jobs
        assert cloud.is_simulated() is True
        cloud.setkey("1001", "secret", server_url="redis://127.0.0.1:9/0")  # nothing listens
        assert cloud.is_simulated() is False
        cloud.start_simulator()
        assert cloud.is_simulated() is True
        assert cloud.result(cloud.call(jf.add, 20, 22), timeout=60) == 42
    finally:
        clients.forget_cluster()
        current = clients.set_client(previous)
        if current is not None:
            current.close()
