"""The dashboard with a million jobs in the store, and with the store gone.

A million real jobs are submitted through the client (no worker serves their type, so
they stay queued, as a big backlog does). Each page must come from a bounded read: the
bounds asserted are seconds, where reading every job would take minutes and gigabytes
of gateway memory. Precise figures belong in `bench/`; these catch "load everything".
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client import session as clients
from picloud_compat.settings import Settings
from picloud_compat.store.redis import RedisStore
from tests import jobfuncs as jf
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.dashboard.session import DashboardSession, listed_jids, text
from tests.harness import Gateway, RedisServer

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

MILLION = 1_000_000
PAGE_SECONDS = 3.0


class Stack:
    def __init__(self, tmp: Path) -> None:
        ensure_redis_server()
        self.redis = RedisServer(tmp)
        self.redis.start()
        self.gateway = Gateway(
            self.redis.url, SIGNING_KEY, tmp, env={"PICLOUD_METRICS_TOKEN": "scrape"}
        )
        self.gateway.start()
        self.settings = Settings(server_url=self.redis.url, signing_key=SIGNING_KEY)
        self.store = RedisStore.from_url(self.redis.url, self.settings)
        self.api_key, self.secret = AccountRegistry(self.store, self.settings).create_key()

    def close(self) -> None:
        self.store.close()
        self.gateway.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[int]]]:
    stack = Stack(tmp_path_factory.mktemp("million"))
    client = clients.cluster_client(stack.settings, stack.api_key)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no worker serves m1: that is the point
            jids = client.map(jf.noop, range(MILLION), _type="m1", _label="bulk")
            tail = client.call(jf.noop, _type="m1", _label="last")
        assert len(jids) == MILLION
        yield stack, [*jids, tail]
    finally:
        client.hub.close()
        stack.close()


def timed(session: DashboardSession, path: str, **params: object) -> httpx.Response:
    start = time.perf_counter()
    response = session.get(path, **params)
    elapsed = time.perf_counter() - start
    assert response.status_code == 200, text(response)[:300]
    assert elapsed < PAGE_SECONDS, f"{path} {params} took {elapsed:.2f} s"
    return response


def test_pages_stay_fast_with_a_million_jobs(million) -> None:  # type: ignore[no-untyped-def]
    stack, jids = million
    last = jids[-1]
    s = DashboardSession(stack.gateway.url)
    assert s.sign_in(stack.api_key, stack.secret).status_code == 303

    newest = listed_jids(timed(s, "/dashboard/jobs"))
    assert newest == list(range(last, last - 50, -1))
    deep = listed_jids(timed(s, "/dashboard/jobs", below=500_000))
    assert deep == list(range(499_999, 499_949, -1))

    # a label held by one job: found at once (it is the newest)
    assert listed_jids(timed(s, "/dashboard/jobs", label="last")) == [last]
    # a filter nothing matches: one bounded scan, and the page says where it stopped
    page = timed(s, "/dashboard/jobs", status="done")
    assert listed_jids(page) == []
    assert "older jobs have not been searched yet" in text(page)
    assert 'data-testid="older"' in page.text
    # a time range is a bisection over jids, not a scan
    created = stack.store.info(stack.api_key, [700_000], ["created"])[0]
    assert created is not None
    since = float(created["created"])  # type: ignore[arg-type]
    rows = listed_jids(timed(s, "/dashboard/jobs", until=str(since)))
    assert rows and rows[0] < 700_000 and all(j < 700_000 for j in rows)

    detail = timed(s, f"/dashboard/jobs/{jids[123_456]}")
    assert "(123456)" in text(detail) and "queued" in text(detail)

    rss = psutil.Process(stack.gateway.proc.pid).memory_info().rss  # type: ignore[union-attr]
    assert rss < 300 * 2**20, f"the gateway holds {rss / 2**20:.0f} MB"
    s.close()


@pytest.fixture
def small_stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    yield stack
    stack.close()


def test_an_unreachable_store_is_a_clear_503_and_store_up_0(small_stack: Stack) -> None:
    stack = small_stack
    s = DashboardSession(stack.gateway.url)
    assert s.sign_in(stack.api_key, stack.secret).status_code == 303
    assert s.get("/dashboard/jobs").status_code == 200
    metrics = httpx.get(f"{stack.gateway.url}/metrics", headers={"Authorization": "Bearer scrape"})
    assert "picloud_store_up 1.0" in metrics.text

    stack.redis.stop()
    for path in ("/dashboard/jobs", "/dashboard/jobs/1", "/dashboard/workers"):
        r = s.get(path)
        assert r.status_code == 503, (path, r.status_code)
        assert "job store is unavailable" in text(r)
    metrics = httpx.get(f"{stack.gateway.url}/metrics", headers={"Authorization": "Bearer scrape"})
    assert metrics.status_code == 200
    assert "picloud_store_up 0.0" in metrics.text
    s.close()


def test_a_billion_reserved_jids_do_not_make_a_request_read_them_all(small_stack: Stack) -> None:
    """A tenant may reserve jids without jobs (`allocate`): a time filter and a bulk
    action must still read a bounded number of them."""
    stack = small_stack
    for _ in range(100):
        stack.store.allocate(stack.api_key, 10_000_000)
    assert stack.store.last_jid(stack.api_key) == 1_000_000_000
    s = DashboardSession(stack.gateway.url)
    assert s.sign_in(stack.api_key, stack.secret).status_code == 303
    page = timed(s, "/dashboard/jobs", since="1000", until=str(time.time()))
    assert listed_jids(page) == []
    start = time.perf_counter()
    done = s.post("/dashboard/jobs/bulk", {"action": "delete", "label": "none"})
    assert done.status_code == 200 and "Deleted 0 jobs" in text(done)
    assert time.perf_counter() - start < 30
    s.close()
