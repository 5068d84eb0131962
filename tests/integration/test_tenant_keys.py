"""Clients that hold only their own tenant key, never the cluster's signing key.

`picloud keys create` issues (api_key, api_secretkey, tenant_key). Tenant A, armed with
its own credentials and raw redis-py, tries to make tenant B's client or B's jobs run
A's code: it can only seal with A's key, and B's side refuses every such blob unopened.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client.jobs import Client
from picloud_compat.client.session import authenticated_client
from picloud_compat.errors import AuthenticityError, CloudException, ConfigurationError
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.store import keys
from picloud_compat.store.redis import RedisStore
from tests import jobfuncs as jf

pytestmark = pytest.mark.timeout(120)


class Plant:
    """Unpickling this creates a marker file: proof that a payload ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


Issued = tuple[str, str, str]  # api_key, api_secretkey, tenant_key


@pytest.fixture
def registry(cluster_settings: Settings) -> Iterator[AccountRegistry]:
    store = RedisStore.from_url(cluster_settings.server_url or "", cluster_settings)
    yield AccountRegistry(store, cluster_settings)
    store.close()


def issue(registry: AccountRegistry) -> Issued:
    api_key, secret = registry.create_key("tenant-key test")
    return api_key, secret, registry.tenant_key(api_key)


def keyless_client(cluster_settings: Settings, issued: Issued) -> Client:
    """A client configured as a tenant would be: no cluster signing key at all."""
    api_key, secret, tenant_key = issued
    settings = Settings(
        server_url=cluster_settings.server_url,
        api_key=api_key,
        api_secretkey=secret,
        tenant_key=tenant_key,
    )
    assert settings.signing_key is None
    return authenticated_client(settings)


def test_a_client_with_only_its_tenant_key_runs_jobs(worker, registry, cluster_settings):
    a = keyless_client(cluster_settings, issue(registry))
    try:
        assert a.result(a.call(jf.add, 2, 3), timeout=60) == 5
        assert a.result(a.map(jf.square, range(5)), timeout=60) == [0, 1, 4, 9, 16]
    finally:
        a.close()


def test_a_wrong_tenant_key_gets_clear_job_errors(worker, registry, cluster_settings):
    api_key, secret, _ = issue(registry)
    _, _, someone_elses = issue(registry)
    c = keyless_client(cluster_settings, (api_key, secret, someone_elses))
    try:
        with pytest.raises(CloudException, match="signature"):
            c.result(c.call(jf.add, 1, 1), timeout=60)
    finally:
        c.close()


def test_a_deactivated_key_is_refused_even_with_its_tenant_key(registry, cluster_settings):
    issued = issue(registry)
    registry.set_active(issued[0], False)
    with pytest.raises(CloudException):
        keyless_client(cluster_settings, issued)


def test_no_signing_key_at_all_is_a_clear_configuration_error(cluster_settings):
    with pytest.raises(ConfigurationError, match="PICLOUD_TENANT_KEY"):
        authenticated_client(Settings(server_url=cluster_settings.server_url, api_key="1001"))


def test_a_result_planted_by_another_tenant_is_never_opened(
    worker, registry, cluster_settings, tmp_path
):
    """A seals a payload with its own key and writes it as B's result with raw redis-py:
    B's client refuses it unopened."""
    a_issued, b_issued = issue(registry), issue(registry)
    b = keyless_client(cluster_settings, b_issued)
    try:
        jid = b.call(jf.add, 1, 2)
        assert b.result(jid, timeout=60) == 3
        marker = tmp_path / "pwned"
        a_key = bytes.fromhex(a_issued[2])
        for claimed in (a_issued[0], b_issued[0]):  # A's key, whatever tenant it claims
            forged = Signer.from_tenant_key(a_key, claimed).seal(pickle.dumps(Plant(str(marker))))
            b.store.redis.hset(keys.job(b.tenant, jid), "r", forged)
            b.hub.forget([])
            with pytest.raises(AuthenticityError):
                b.result(jid)
        assert not marker.exists()
    finally:
        b.close()


def test_a_job_planted_by_another_tenant_never_runs_as_the_victim(
    worker, registry, cluster_settings, tmp_path
):
    """A rewrites the arguments of B's waiting job with a payload sealed by A's key: B's
    worker refuses to open it, the job fails, and nothing of A's ran."""
    a_issued, b_issued = issue(registry), issue(registry)
    b = keyless_client(cluster_settings, b_issued)
    try:
        marker = tmp_path / "pwned"
        blocker = b.call(jf.sleep, 0.5)
        jid = b.call(jf.noop, 1, _depends_on=blocker)
        a_signer = Signer.from_tenant_key(bytes.fromhex(a_issued[2]), b_issued[0])
        payload = a_signer.seal(pickle.dumps(((Plant(str(marker)),), {})))
        b.store.redis.hset(keys.job(b.tenant, jid), "a", payload)
        with pytest.raises(CloudException, match="signature"):
            b.result(jid, timeout=60)
        assert not marker.exists()
    finally:
        b.close()


def test_a_tenant_process_needs_no_cluster_secret(worker, registry, cluster_settings, tmp_path):
    """A user's script configured from the environment with the three issued values."""
    api_key, secret, tenant_key = issue(registry)
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import cloud

            def triple(x):
                return 3 * x

            print(cloud.result(cloud.call(triple, 14), timeout=60))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.update(
        PICLOUD_CONFIG_DIR=str(tmp_path / "conf"),
        PICLOUD_SERVER_URL=cluster_settings.server_url or "",
        PICLOUD_API_KEY=api_key,
        PICLOUD_API_SECRETKEY=secret,
        PICLOUD_TENANT_KEY=tenant_key,
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
