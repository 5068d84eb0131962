"""The dashboard's defences besides tenant separation, over real HTTP against real
gateway processes: the security headers and pages without inline script, the sign-in
throttle (from several loopback addresses), the per-key request rate, sessions that end
when the admin password changes, and Secure cookies behind a TLS proxy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from picloud_compat.accounts import AccountRegistry
from picloud_compat.settings import Settings
from picloud_compat.store.redis import RedisStore
from tests.conftest import ADMIN_PASSWORD, SIGNING_KEY
from tests.dashboard.session import DashboardSession
from tests.harness import Gateway, RedisServer

pytestmark = [pytest.mark.timeout(180), pytest.mark.cluster]

COOKIE = "picloud_dashboard"


@pytest.fixture
def keys(cluster_settings: Settings) -> Iterator[list[tuple[str, str]]]:
    """Two fresh API keys and their secrets."""
    store = RedisStore.from_url(cluster_settings.server_url or "", cluster_settings)
    registry = AccountRegistry(store, cluster_settings)
    yield [registry.create_key("hardening-a"), registry.create_key("hardening-b")]
    store.close()


@pytest.fixture
def key(keys: list[tuple[str, str]]) -> tuple[str, str]:
    return keys[0]


@contextmanager
def own_gateway(redis_server: RedisServer, tmp_path: Path, **env: str) -> Iterator[Gateway]:
    """A gateway of the test's own (its throttle counts and settings are not shared)."""
    settings = {"PICLOUD_ADMIN_PASSWORD": ADMIN_PASSWORD, **env}
    gateway = Gateway(redis_server.url, SIGNING_KEY, tmp_path, env=settings)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def session_from(url: str, address: str) -> DashboardSession:
    """A dashboard session whose connections come from loopback `address`."""
    session = DashboardSession(url)
    session.http = httpx.Client(
        base_url=url,
        follow_redirects=False,
        timeout=30,
        transport=httpx.HTTPTransport(local_address=address),
    )
    return session


def test_pages_carry_security_headers_and_no_inline_script(gateway, key) -> None:  # type: ignore[no-untyped-def]
    s = DashboardSession(gateway.url)
    assert s.sign_in(*key).status_code == 303
    for path in ("/dashboard/login", "/dashboard/jobs", "/dashboard/workers", "/dashboard/jobs/1"):
        r = s.get(path)
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in r.headers  # plain HTTP here
        # what the policy forbids is not used: no inline script or handler, no style
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
        assert not re.search(r"\son[a-z]+\s*=", r.text), path
        assert not re.search(r"<style|\sstyle\s*=", r.text), path
    # the static files and the dashboard's own 404s carry them too
    script = s.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in script.headers["content-security-policy"]
    for path in ("/dashboard/no-such-page", "/dashboard/static/no-such-file.js"):
        missing = s.get(path)
        assert missing.status_code == 404, path
        assert missing.headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"], path
    page = s.get("/dashboard/no-such-page")
    assert "text/html" in page.headers["content-type"] and "Not found" in page.text
    s.close()


def test_repeated_failed_sign_ins_are_refused_for_a_while(redis_server, tmp_path: Path, key):  # type: ignore[no-untyped-def]
    api_key, secret = key
    with own_gateway(redis_server, tmp_path, PICLOUD_SIGN_IN_ATTEMPTS="3") as gateway:
        attacker = session_from(gateway.url, "127.0.0.1")
        for _ in range(3):
            assert attacker.sign_in("admin", "guess").status_code == 401
        # over the limit: refused before the credentials are checked, right ones too
        refused = attacker.sign_in("admin", ADMIN_PASSWORD)
        assert refused.status_code == 429
        assert 200 < int(refused.headers["retry-after"]) <= 300
        assert "too many failed sign-ins" in refused.text
        assert attacker.sign_in(api_key, secret).status_code == 429
        # a forged forwarded address is not believed (no proxy is trusted here)
        forged = attacker.http.post(
            "/dashboard/login",
            data={"api_key": "admin", "secret": ADMIN_PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        assert forged.status_code == 429
        # another address is not held up by this one's failures ...
        other = session_from(gateway.url, "127.0.0.2")
        assert other.sign_in(api_key, secret).status_code == 303
        # ... and failures as one name from many addresses lock nobody out: the admin
        # still signs in from an address that did not fail
        for n in range(3, 9):
            s = session_from(gateway.url, f"127.0.0.{n}")
            for _ in range(3):
                assert s.sign_in("admin", "guess").status_code == 401
            s.close()
        assert other.sign_in("admin", ADMIN_PASSWORD).status_code == 303
        attacker.close()
        other.close()


def test_a_new_admin_password_ends_earlier_admin_sessions(redis_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    with own_gateway(redis_server, tmp_path) as gateway:
        s = DashboardSession(gateway.url)
        assert s.sign_in("admin", ADMIN_PASSWORD).status_code == 303
        cookie = s.http.cookies[COOKIE]
        s.close()

    def admin_page(gateway: Gateway) -> int:
        s = DashboardSession(gateway.url)
        s.http.cookies.set(COOKIE, cookie, path="/dashboard")
        status = s.get("/dashboard/workers").status_code
        s.close()
        return status

    with own_gateway(redis_server, tmp_path) as restarted:  # same password: still signed in
        assert admin_page(restarted) == 200
    with own_gateway(redis_server, tmp_path, PICLOUD_ADMIN_PASSWORD="a-new-one") as changed:
        assert admin_page(changed) == 303  # sent to sign in again


def test_cookies_are_secure_when_the_public_address_is_https(redis_server, tmp_path: Path, key):  # type: ignore[no-untyped-def]
    # TLS ends at a proxy in front: this gateway sees plain HTTP from an address it
    # does not trust for forwarded headers, but its public address is HTTPS
    public = {"PICLOUD_GATEWAY_URL": "https://jobs.example.com"}
    with own_gateway(redis_server, tmp_path, **public) as gateway:
        s = DashboardSession(gateway.url)
        r = s.sign_in(*key)
        assert r.status_code == 303
        assert "secure" in r.headers["set-cookie"].lower()
        assert r.headers["strict-transport-security"].startswith("max-age=")
        s.close()


def test_each_key_has_its_own_request_rate(redis_server, tmp_path: Path, keys):  # type: ignore[no-untyped-def]
    with own_gateway(redis_server, tmp_path, PICLOUD_DASHBOARD_RATE="1") as gateway:
        busy, calm = DashboardSession(gateway.url), DashboardSession(gateway.url)
        assert busy.sign_in(*keys[0]).status_code == 303
        assert calm.sign_in(*keys[1]).status_code == 303
        # a burst of 5 s worth (5 pages) passes, then the key must slow down
        responses = [busy.get("/dashboard/workers") for _ in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        refused = None
        for _ in range(10):
            r = busy.get("/dashboard/workers")
            if r.status_code != 200:
                refused = r
                break
        assert refused is not None and refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert "too many requests" in refused.text
        assert calm.get("/dashboard/workers").status_code == 200  # another key: unaffected
        busy.close()
        calm.close()
