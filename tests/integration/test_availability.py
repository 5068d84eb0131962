"""Submitting to a compute type nobody serves, or that only other runtimes serve.

A private Redis with no worker of its own: registrations are written the way workers'
supervisors write them, so the client reads real registrations through the store.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest

from picloud_compat.client import session
from picloud_compat.client.jobs import Client
from picloud_compat.errors import CloudPicklingError, NoWorkersWarning
from picloud_compat.settings import Settings
from picloud_compat.signing import RUNTIME
from picloud_compat.store.records import QueueService, WorkerInfo
from picloud_compat.store.redis import RedisStore
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer


def _noop() -> None:
    return None


@pytest.fixture
def lonely(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, RedisStore]]:
    """A client of a cluster whose Redis no worker serves; and that Redis's store."""
    ensure_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis-lonely"))
    server.start()
    settings = Settings(server_url=server.url, signing_key=SIGNING_KEY)
    store = RedisStore.from_url(server.url, settings)
    client = session.cluster_client(settings, "t-lonely")
    try:
        yield client, store
    finally:
        client.close()
        store.close()
        server.stop()


def test_submitting_to_a_type_nobody_serves_warns_at_once(lonely) -> None:  # type: ignore[no-untyped-def]
    client, _ = lonely
    with pytest.warns(NoWorkersWarning, match="no live worker serves compute type 'c2'"):
        jid = client.call(_noop, _type="c2")
    assert client.status(jid) == "queued"  # submitted all the same: a worker may be starting
    assert client.services()["c2"] == QueueService(0)


def test_workers_of_another_runtime_refuse_the_submit_naming_both(lonely) -> None:  # type: ignore[no-untyped-def]
    client, store = lonely
    other = "py3.99|cp9.9.9"
    store.heartbeat(WorkerInfo("host:1", ("m1",), 4, time.time(), other))
    store.heartbeat(WorkerInfo("host:2", ("c1",), 2, time.time(), RUNTIME))
    with pytest.raises(CloudPicklingError) as info:
        client.call(_noop, _type="m1")
    assert other in str(info.value) and RUNTIME in str(info.value)
    assert client.store.unfinished(client.tenant) == []  # nothing was created
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # served in this runtime: no warning
        client.call(_noop, _type="c1")
    served = client.services()
    assert served["m1"] == QueueService(4, (other,), 4)
    assert served["c1"] == QueueService(2, (RUNTIME,), 2)
