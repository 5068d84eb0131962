"""A PiCloud script pointed at an isolated cluster: ``setkey(key, secret, gateway URL)``.

The user holds what PiCloud users held (an API key and its secret) and nothing else:
no Redis URL, no cluster secret, no tenant key, no S3 credentials.
"""

from __future__ import annotations

import hashlib
import time

import pytest

import cloud
from picloud_compat.accounts import AccountRegistry
from picloud_compat.client import session
from picloud_compat.store.redis import RedisStore

pytestmark = pytest.mark.timeout(180)


def _double(x: int) -> int:
    return 2 * x


@pytest.fixture
def fresh_session():  # type: ignore[no-untyped-def]
    previous = session.set_client(None)
    yield
    current = session.set_client(previous)
    if current is not None:
        current.close()
    session.forget_cluster()


def test_a_picloud_script_runs_with_only_a_key_and_secret(
    isolated_cluster, fresh_session, tmp_path
):
    api_key, secret = isolated_cluster.new_key("script")
    cloud.setkey(api_key, secret, server_url=isolated_cluster.gateway.url)
    jid = cloud.call(_double, 21, _label="answer")
    assert cloud.result(jid, timeout=60) == 42
    assert cloud.result(cloud.map(_double, range(5)), timeout=60) == [0, 2, 4, 6, 8]
    assert cloud.info(jid, ["label"])[jid]["label"] == "answer"
    source = tmp_path / "data.txt"
    source.write_bytes(b"isolated files travel through presigned URLs\n" * 1000)
    cloud.files.put(str(source), "in/data.txt")
    assert cloud.files.list() == ["in/data.txt"]
    assert cloud.files.getf("in/data.txt").read() == source.read_bytes()
    assert cloud.files.get_md5("in/data.txt") == hashlib.md5(source.read_bytes()).hexdigest()
    assert cloud.files.delete("in/data.txt") and not cloud.files.exists("in/data.txt")
    info = cloud.connection_info()
    assert info["server_url"] == isolated_cluster.gateway.url and info["api_key"] == api_key


def test_a_wrong_secret_or_a_deactivated_key_is_refused_at_the_first_call(
    isolated_cluster, fresh_session
):
    api_key, secret = isolated_cluster.new_key("refused")
    cloud.setkey(api_key, secret + "x", server_url=isolated_cluster.gateway.url)
    with pytest.raises(cloud.CloudException, match="invalid API key"):
        cloud.call(_double, 1)
    admin = RedisStore.from_url(isolated_cluster.redis.url, isolated_cluster.settings)
    try:
        AccountRegistry(admin, isolated_cluster.settings).set_active(api_key, False)
    finally:
        admin.close()
    time.sleep(1.1)  # the gateway trusts a checked key for at most a second
    cloud.setkey(api_key, secret, server_url=isolated_cluster.gateway.url, restart=True)
    with pytest.raises(cloud.CloudException, match="invalid API key"):
        cloud.call(_double, 1)
