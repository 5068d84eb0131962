"""Redis ACL users for the platform's processes: workers, beat and the gateway run as a
user that cannot run Redis's dangerous commands, with the default user switched off.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from picloud_compat.client import session
from picloud_compat.settings import Settings
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker, check_beat_and_gateway

pytestmark = pytest.mark.timeout(180)

PLATFORM_RULES = ["on", "~*", "&*", "+@all", "-@dangerous"]
"""What deploy/README.md recommends for workers, beat, the gateway and the exporter."""


def _tick() -> int:
    return 1


def _double(x: int) -> int:
    return 2 * x


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, str]]:
    ensure_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("acl"), password=secrets.token_hex(8))
    server.start()
    password = secrets.token_hex(12)
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "platform", *PLATFORM_RULES, f">{password}")
    admin.execute_command("ACL", "SETUSER", "admin", "on", "~*", "&*", "+@all", f">{password}")
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.close()
    try:
        yield server, password
    finally:
        try:  # the default user (which stop() would use) is off: shut down as admin
            redis.Redis(port=server.port, username="admin", password=password).shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass  # shutting down closes the connection
        server.stop()


def test_the_platform_runs_as_an_acl_user_without_dangerous_commands(acl_redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, password = acl_redis
    url = f"redis://platform:{password}@127.0.0.1:{server.port}/0"
    settings = Settings(server_url=url, signing_key=SIGNING_KEY)
    worker = Worker(url, SIGNING_KEY, tmp_path, concurrency=2, queues="c1")
    client = session.cluster_client(settings, "t-acl")
    try:
        worker.start()
        assert client.result(client.map(_double, range(10)), timeout=60) == [
            2 * x for x in range(10)
        ]
        check_beat_and_gateway(url, SIGNING_KEY, tmp_path, "acl")
    finally:
        client.close()
        worker.stop()
    platform = redis.Redis(port=server.port, username="platform", password=password)
    for command in (
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("KEYS", "*"),
        ("ACL", "LIST"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            platform.execute_command(*command)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=server.port).ping()  # the default user is off
