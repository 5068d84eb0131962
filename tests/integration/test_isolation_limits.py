"""Bounds that keep one tenant from hurting the cluster (found by a hostile review).

Real parts: the isolated cluster's gateway over raw HTTP, its Redis, and the records as
the store and the wire build them.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse

import httpx
import pytest

from picloud_compat.errors import CloudException
from picloud_compat.runner.state_file import _parse_job
from picloud_compat.store.records import MAX_JID, ChunkRef
from picloud_compat.store.redis import RedisStore
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.http import CONTENT_TYPE
from picloud_compat.store.remote.scope import MAX_RECORDS

pytestmark = pytest.mark.timeout(120)


def rpc(url: str, auth: tuple[str, str], method: str, args: list, timeout: float = 30) -> list:  # type: ignore[type-arg]
    reply = httpx.post(
        f"{url}/v1/rpc/{method}",
        content=wire.pack([method, args]),
        auth=auth,
        headers={"Content-Type": CONTENT_TYPE},
        timeout=timeout,
    )
    assert reply.status_code == 200, reply.text
    return wire.unpack(reply.content)  # type: ignore[no-any-return]


def test_chunks_and_jids_are_bounded_where_they_are_built(isolated_cluster) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        ChunkRef("1001", 1, 10**12)  # a script would loop over a trillion jids
    with pytest.raises(ValueError):
        ChunkRef("1001", MAX_JID, 1)  # Lua would print it as 1e+13
    store = RedisStore.from_url(isolated_cluster.redis.url, isolated_cluster.settings)
    try:
        with pytest.raises(CloudException):
            store.allocate("1001", 10**14)
        store.allocate("t-bounds", 10_000_000)  # a ten-million-job map may reserve its jids
    finally:
        store.close()


def test_an_unauthenticated_caller_cannot_make_the_gateway_read_a_huge_body(
    isolated_cluster,
) -> None:  # type: ignore[no-untyped-def]
    parts = urllib.parse.urlsplit(isolated_cluster.gateway.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", "/v1/rpc/submit")
    conn.putheader("Authorization", "Basic bm9ib2R5Om5vdGhpbmc=")
    conn.putheader("Content-Length", str(600 * 1024 * 1024))
    conn.endheaders()  # and not a byte of the announced body
    started = time.monotonic()
    reply = conn.getresponse()
    assert reply.status == 401 and time.monotonic() - started < 5
    conn.close()


def test_long_lists_and_big_bodies_are_refused_per_call(isolated_cluster) -> None:  # type: ignore[no-untyped-def]
    api_key, secret = isolated_cluster.new_key("lists")
    url, auth = isolated_cluster.gateway.url, (api_key, secret)
    answer = rpc(url, auth, "statuses", [api_key, list(range(1, 200_001))])
    assert answer[0] is False and "at most" in str(answer[2])
    big = httpx.post(
        f"{url}/v1/rpc/statuses",
        content=b"\x00" * (5 * 1024 * 1024),
        auth=auth,
        headers={"Content-Type": CONTENT_TYPE},
        timeout=30,
    )
    assert big.status_code == 413
    client = isolated_cluster.client(api_key, secret)  # the client splits long lists itself
    try:
        assert client.store.statuses(api_key, list(range(1, 120_001))) == [None] * 120_000
    finally:
        client.close()


def test_a_tenant_keeps_a_bounded_number_of_records(isolated_cluster) -> None:  # type: ignore[no-untyped-def]
    """Crons, REST endpoints and environments live in the shared Redis: a tenant writing
    records around the client library's checks still cannot write without end."""
    api_key, secret = isolated_cluster.new_key("records")
    url, auth = isolated_cluster.gateway.url, (api_key, secret)
    fields = {"spec": "{}", "requirements": "[]"}
    with httpx.Client(base_url=url, auth=auth, timeout=30) as http:

        def save(label: str, replace: bool = False) -> list:  # type: ignore[type-arg]
            body = wire.pack(["save_record", [api_key, "env", label, fields, b"", replace]])
            reply = http.post(
                "/v1/rpc/save_record", content=body, headers={"Content-Type": CONTENT_TYPE}
            )
            assert reply.status_code == 200, reply.text
            return wire.unpack(reply.content)  # type: ignore[no-any-return]

        for n in range(MAX_RECORDS):
            assert save(f"e{n}")[0] is True, n
        refused = save("one-more")
        assert refused[0] is False and f"already has {MAX_RECORDS} env records" in str(refused[2])
        assert save("e7", replace=True)[0] is True  # replacing one still works
        assert len(rpc(url, auth, "record_labels", [api_key, "env"])[1]) == MAX_RECORDS
        odd = rpc(url, auth, "save_record", [api_key, "nonsense", "x", fields, b"", False])
        assert odd[0] is False and "no record kind" in str(odd[2])
        # nor grow one without end, nor fire crons that have no record
        many = {f"f{n}": "x" for n in range(40)}
        grown = rpc(url, auth, "update_record", [api_key, "env", "e1", many])
        assert grown[0] is False and "at most 32 fields" in str(grown[2])
        huge = rpc(url, auth, "update_record", [api_key, "env", "e1", {"spec": "x" * 100_000}])
        assert huge[0] is False and "bytes" in str(huge[2])
        loose = rpc(url, auth, "cron_save", ["no-such-cron", "* * * * *", "c1"])
        assert loose[0] is False and "no cron named" in str(loose[2])


def test_one_tenants_long_polls_do_not_starve_another(isolated_cluster) -> None:  # type: ignore[no-untyped-def]
    url = isolated_cluster.gateway.url
    a = isolated_cluster.new_key("poller")
    b = isolated_cluster.new_key("bystander")

    def poll() -> None:
        rpc(url, a, "pop_notices", [a[0], "cid", 5.0], timeout=30)

    threads = [threading.Thread(target=poll) for _ in range(48)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert rpc(url, b, "statuses", [b[0], [1]]) == [True, [None]]
    assert time.monotonic() - started < 2.0
    for thread in threads:
        thread.join()


def test_an_unreadable_job_line_does_not_stop_the_warden() -> None:
    assert _parse_job("1 0123456789abcdef 42 1700000000.000 x 1001") is None
    assert _parse_job("1 0123456789abcdef 42 1700000000.000 2.5 1001") is not None
