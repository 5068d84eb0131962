"""Requests a Redis store step costs. On a VM each request costs the client and Redis
CPU that the vCPUs running jobs pay for, so steps that can share one request do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picloud_compat.errors import ConnectionFailed
from picloud_compat.store import keys
from picloud_compat.store.redis import RedisStore
from tests.store.conftest import base_settings, count_requests, new_tenant
from tests.store.test_contract import claim, make_sub


@pytest.fixture
def raw(store_redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(store_redis_url, base_settings(store_redis_url))
    yield store
    store.close()


def test_a_submit_with_big_arguments_is_one_request(raw: RedisStore) -> None:
    t = new_tenant()
    big = b"B" * (70 * 1024)  # kept outside the Lua script, SET in the same MULTI
    raw.submit(t, make_sub(args=[big]))  # the store's first loads the script
    sub = make_sub(args=[big, b"small"], fn_blob=None)
    sent = count_requests(raw)
    first = sub.first = raw.allocate(t, 2)
    sent.clear()
    assert raw.submit(t, sub) == first
    assert len(sent) == 1


def test_a_submit_with_big_arguments_after_redis_lost_its_scripts(raw: RedisStore) -> None:
    t = new_tenant()
    big = bytes(range(256)) * 400
    raw.submit(t, make_sub(args=[big]))
    raw.redis.script_flush()  # as after a restart
    first = raw.submit(t, make_sub(args=[big, b"small"], fn_blob=None))
    jids = [first, first + 1]
    got = claim(raw, t, jids)  # type: ignore[arg-type]
    assert [j.args for j in got.jobs] == [big, b"small"]
    assert raw.statuses(t, jids) == ["processing", "processing"]


def test_a_script_redis_keeps_losing_is_an_outage(raw: RedisStore) -> None:
    """Scripts flushed again between the reload and the resend (a Redis restarting over
    and over): a typed outage, the submit did not happen, nothing is left for good."""
    t = new_tenant()
    big = b"B" * (70 * 1024)
    raw.submit(t, make_sub(args=[big]))
    load = raw.redis.script_load

    def load_then_lose(script: str) -> str:
        sha = load(script)
        raw.redis.script_flush()
        return sha

    raw.redis.script_load = load_then_lose  # type: ignore[method-assign]
    raw.redis.script_flush()
    sub = make_sub(args=[big], fn_blob=None)
    sub.first = raw.allocate(t, 1)
    with pytest.raises(ConnectionFailed, match="lost its scripts"):
        raw.submit(t, sub)
    assert raw.statuses(t, [sub.first]) == [None]
    assert 0 < raw.redis.ttl(keys.args(t, sub.first)) <= 3600  # expires by itself
