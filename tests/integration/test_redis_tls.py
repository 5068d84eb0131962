"""Redis over TLS (``rediss://``) for the store, the broker, beat and the gateway.

A ``redis-server`` that only speaks TLS on loopback, with a CA and a server certificate
made here with openssl; nothing is reachable in plain text.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from picloud_compat.client import session
from picloud_compat.errors import ConnectionFailed
from picloud_compat.settings import Settings
from picloud_compat.store.redis import RedisStore
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import Worker, check_beat_and_gateway, free_port, wait_for

pytestmark = pytest.mark.timeout(180)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path, name: str = "ca") -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        f"/CN=picloud test {name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        cwd=directory,
    )
    if name == "ca":
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            cwd=directory,
        )
        (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
            "-out",
            "server.crt",
            cwd=directory,
        )
    return directory / f"{name}.crt"


def _tick() -> float:
    return time.time()


def _double(x: int) -> int:
    return 2 * x


class TlsRedis:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = make_certificates(directory)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self._pings(self.url), 10, "the TLS redis-server")

    def url_with(self, ca: Path) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"

    @property
    def url(self) -> str:
        return self.url_with(self.ca)

    @staticmethod
    def _pings(url: str) -> bool:
        try:
            return bool(redis.from_url(url, socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsRedis, Worker]]:
    ensure_redis_server()
    server = TlsRedis(tmp_path_factory.mktemp("tls"))
    worker = Worker(server.url, SIGNING_KEY, tmp_path_factory.mktemp("tls-worker"), queues="c1")
    try:
        worker.start()
        yield server, worker
    finally:
        worker.stop()
        server.stop()


def test_jobs_run_over_tls_and_plain_text_is_refused(tls) -> None:  # type: ignore[no-untyped-def]
    server, _ = tls
    client = session.cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "t")
    try:
        assert client.result(client.map(_double, range(20)), timeout=60) == [
            2 * x for x in range(20)
        ]
    finally:
        client.close()
    plain = redis.Redis(port=server.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()


def test_a_certificate_from_another_ca_is_refused(tls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, _ = tls
    stranger = make_certificates(tmp_path, "other-ca")
    settings = Settings(server_url=server.url_with(stranger), signing_key=SIGNING_KEY)
    with pytest.raises(ConnectionFailed):
        RedisStore.from_url(settings.server_url or "", settings).statuses("t", [1])


def test_beat_and_the_gateway_over_tls(tls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, _ = tls
    check_beat_and_gateway(server.url, SIGNING_KEY, tmp_path, "tls")
