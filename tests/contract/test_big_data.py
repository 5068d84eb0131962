"""Big arguments and results: on a team cluster they travel through S3 and the job store
keeps a reference (``offload_bytes``, 2 MiB); everywhere they arrive intact."""

from __future__ import annotations

import os

import pytest

from picloud_compat.client.session import get_client
from picloud_compat.files.blobs import REF

pytestmark = pytest.mark.timeout(180)


def _reverse(data: bytes) -> bytes:
    return data[::-1]


def test_big_arguments_and_results_arrive_intact(cloud, mode) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(3 * 2**20)
    jid = cloud.call(_reverse, data)
    assert cloud.result(jid, timeout=120) == data[::-1]
    shared = cloud.map(_reverse, [data, data])  # one upload serves both (named by content)
    assert cloud.result(shared, timeout=120) == [data[::-1]] * 2
    small = cloud.call(_reverse, b"tiny")
    assert cloud.result(small, timeout=60) == b"ynit"
    if mode != "cluster":
        return  # the simulator and isolated clients hold no S3 credentials: no offload
    client = get_client()
    store = client.store
    argument = store.arguments(client.tenant, jid)  # type: ignore[attr-defined]
    (result,) = store.results(client.tenant, [jid])
    assert argument is not None and argument.startswith(REF) and len(argument) < 200
    assert result is not None and result.startswith(REF) and len(result) < 200
    tiny = store.arguments(client.tenant, small)  # type: ignore[attr-defined]
    assert tiny is not None and not tiny.startswith(REF)


def test_a_reference_outside_the_tenants_prefix_is_refused(cloud, mode) -> None:  # type: ignore[no-untyped-def]
    if mode != "cluster":
        return
    from picloud_compat.errors import AuthenticityError

    codec = get_client().codec
    assert codec.offload is not None
    with pytest.raises(AuthenticityError, match="outside this key's"):
        codec.load(REF + b"blobs/someone-else/" + b"0" * 64)
    with pytest.raises(AuthenticityError, match="outside this key's"):
        codec.load(REF + codec.offload.prefix.encode() + b"../x")


def _length(data: bytes) -> int:
    return len(data)


def test_data_bigger_than_redis_holds_travels_through_s3(client, mode) -> None:  # type: ignore[no-untyped-def]
    """On a team cluster max_transmit_data may exceed what the job store holds: a
    257 MiB argument goes to S3; elsewhere it is refused before anything is submitted."""
    from picloud_compat.client.jobs import Client
    from picloud_compat.errors import CloudException
    from picloud_compat.settings import STORE_BLOB_CEILING

    data = b"\x01" * (STORE_BLOB_CEILING + 2**20)
    settings = client.settings.replace(max_transmit_data=2 * len(data))
    big = Client(settings, client.store, client.tenant, client.mode, owns=False)
    try:
        if mode != "cluster":
            with pytest.raises(CloudException, match="S3 offload needs a team cluster"):
                big.call(_length, data)
            return
        jid = big.call(_length, data)
        assert big.result(jid, timeout=150) == len(data)
    finally:
        big.close()
