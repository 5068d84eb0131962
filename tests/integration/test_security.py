"""No pickle is unpickled without an authenticity check; tenants cannot forge for each other."""

from __future__ import annotations

import base64
import json
import pickle
import time
import uuid
from pathlib import Path

import pytest

from picloud_compat.errors import AuthenticityError, CloudException
from picloud_compat.signing import Signer
from picloud_compat.store import keys
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, make_cluster_client

pytestmark = pytest.mark.timeout(120)


class Plant:
    """Unpickling this creates a marker file: proof that a payload ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


@pytest.fixture
def cluster_client(worker, cluster_settings, tenant):  # type: ignore[no-untyped-def]
    c = make_cluster_client(cluster_settings, tenant)
    yield c
    c.hub.close()
    c.store.close()


def test_forged_result_is_never_unpickled_by_the_client(cluster_client, tmp_path):
    c = cluster_client
    jid = c.call(jf.add, 1, 2)
    assert c.result(jid, timeout=30) == 3
    marker = tmp_path / "pwned"
    # small results live in the job's hash (field r)
    c.store.redis.hset(keys.job(c.tenant, jid), "r", pickle.dumps(Plant(str(marker))))
    c.hub.forget([])  # nothing cached: read from Redis
    c.hub._inline.clear()
    with pytest.raises(AuthenticityError):
        c.result(jid)
    assert not marker.exists()


def test_result_signed_for_another_tenant_is_refused(cluster_client, tmp_path):
    c = cluster_client
    jid = c.call(jf.add, 1, 2)
    c.join(jid, timeout=30)
    forged = Signer(SIGNING_KEY, "someone-else").seal(pickle.dumps("forged"))
    c.store.redis.hset(keys.job(c.tenant, jid), "r", forged)
    c.hub._inline.clear()
    with pytest.raises(AuthenticityError):
        c.result(jid)


def test_tampered_arguments_are_never_unpickled_by_the_worker(cluster_client, tmp_path):
    c = cluster_client
    marker = tmp_path / "pwned"
    blocker = c.call(jf.sleep, 0.5)
    jid = c.call(jf.noop, 1, _depends_on=blocker)  # waits, so we can swap its arguments
    c.store.redis.hset(keys.job(c.tenant, jid), "a", pickle.dumps(((Plant(str(marker)),), {})))
    with pytest.raises(CloudException, match="signature") as info:
        c.result(jid, timeout=30)
    assert info.value.status == "error"
    assert not marker.exists()
    assert c.result(c.call(jf.add, 1, 1), timeout=30) == 2


def test_a_hand_crafted_pickle_message_is_rejected_by_the_worker(cluster_client, tmp_path):
    """A message injected straight into the queue, bypassing the client (F-22a)."""
    c = cluster_client
    marker = tmp_path / "pwned"
    body = base64.b64encode(pickle.dumps(((Plant(str(marker)),), {}, {}))).decode()
    tid = str(uuid.uuid4())
    message = {
        "body": body,
        "content-encoding": "binary",
        "content-type": "application/x-python-serialize",
        "headers": {
            "lang": "py",
            "task": "picloud.run_chunk",
            "id": tid,
            "root_id": tid,
            "parent_id": None,
            "group": None,
            "argsrepr": "",
            "kwargsrepr": "",
        },
        "properties": {
            "correlation_id": tid,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "c1"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": tid,
        },
    }
    c.store.redis.lpush("c1", json.dumps(message))
    time.sleep(1.5)
    assert not marker.exists()
    assert c.result(c.call(jf.add, 2, 2), timeout=30) == 4  # the worker is still up


def test_a_forged_function_blob_is_refused(cluster_client, tmp_path):
    c = cluster_client
    marker = tmp_path / "pwned"
    jid = c.call(jf.add, 1, 1)
    c.join(jid, timeout=30)
    sha = next(iter(c._stored_functions))
    c.store.redis.set(keys.function(c.tenant, sha), pickle.dumps(Plant(str(marker))))
    # a fresh function cache on the worker side is not guaranteed, so use a new client whose
    # jobs name the same sha: the worker either has the genuine function cached or refuses.
    other = c.call(jf.add, 2, 2)
    try:
        value = c.result(other, timeout=30)
        assert value == 4
    except CloudException as exc:
        assert "signature" in exc.parameter
    assert not marker.exists()
