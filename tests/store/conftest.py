"""Fixtures of the store contract suite: each test runs on `MemoryStore` and `RedisStore`.

The Redis backend uses the session's private redis-server (`redis_server` from
``tests/conftest.py``), but a database of its own (``/7``): `RedisStore.submit`
LPUSHes Celery messages onto queue lists such as ``c1``, and the session's Celery
workers (if another part of the suite started them) consume database 0 only, so no
worker ever picks up a chunk these tests drive by hand. Cluster-wide keys (ledger,
leases, workers) are isolated the same way.

Every store a test gets is wrapped in `Checked`, which snapshots the status of every
job the test created before and after each call and fails the test on any change
that `picloud_compat.status.can_move` refuses (contract item: status moves follow
`TRANSITIONS`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from picloud_compat.settings import Settings
from picloud_compat.status import FINISHED, can_move
from picloud_compat.store.memory import MemoryStore
from picloud_compat.store.redis import RedisStore
from tests.harness import RedisServer

BACKENDS = ("memory", "redis")
STORE_DB = 7
"""The private redis-server's database these tests use (see the module docstring)."""

# Calls that cannot change a job's status: not worth two snapshots each.
READ_ONLY = frozenset(
    {
        "statuses",
        "info",
        "results",
        "spec",
        "function",
        "jobs",
        "unfinished",
        "concurrency",
        "pop_notices",
        "pop_kill_requests",
        "record",
        "record_function",
        "record_labels",
        "record_owners",
        "account",
        "accounts",
        "live_workers",
        "heartbeat",
        "forget_worker",
        "renew_leases",
        "allocate",
        "claim_once",
        "save_record",
        "update_record",
        "delete_record",
        "create_account",
        "close",
        "leases",
        "ledger",
        "next_chunk",
    }
)
CREATED_AS = frozenset({"waiting", "queued", "stalled"})
"""The statuses `submit` may create a job in."""


def new_tenant() -> str:
    return "t" + uuid.uuid4().hex[:12]


class IllegalStatusChange(AssertionError):
    """A store changed a job's status in a way `status.TRANSITIONS` forbids."""


class Checked:
    """A store proxy that checks every status change the store makes to tracked jobs.

    Jobs are tracked from the `submit` that creates them (or with `track`). Allowed:
    absent -> waiting/queued/stalled only in `submit`; finished -> absent only in
    `delete`; any other change only if `can_move` allows it. Every observed change is
    kept in `moves` as (operation, tenant, jid, before, after).
    """

    def __init__(self, raw: Any, backend: str) -> None:
        self.raw = raw
        self.backend = backend
        self.known: dict[str, set[int]] = defaultdict(set)
        self.moves: list[tuple[str, str, int, str | None, str | None]] = []

    def track(self, t: str, jids: Any) -> None:
        self.known[t].update(jids)

    def snapshot(self) -> dict[tuple[str, int], str | None]:
        out: dict[tuple[str, int], str | None] = {}
        for t, jids in self.known.items():
            ordered = sorted(jids)
            for jid, st in zip(ordered, self.raw.statuses(t, ordered), strict=True):
                out[(t, jid)] = st
        return out

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name in READ_ONLY or name.startswith("_") or not callable(attr):
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            before = self.snapshot()
            try:
                result = attr(*args, **kwargs)
            except BaseException:
                self._check(name, before, self.snapshot())
                raise
            if name == "submit":
                t, sub = args[0], args[1]
                self.track(t, range(result, result + len(sub.args)))
            self._check(name, before, self.snapshot())
            return result

        return checked

    def _check(
        self,
        op: str,
        before: dict[tuple[str, int], str | None],
        after: dict[tuple[str, int], str | None],
    ) -> None:
        for key, new in after.items():
            old = before.get(key)
            if old == new:
                continue
            t, jid = key
            self.moves.append((op, t, jid, old, new))
            if old is None:
                ok = op == "submit" and new in CREATED_AS
            elif new is None:
                ok = op == "delete" and old in FINISHED
            else:
                ok = can_move(old, new)
            if not ok:
                raise IllegalStatusChange(f"{op}: job {t}/{jid} moved {old} -> {new}")


@pytest.fixture(scope="session")
def store_redis_url(redis_server: RedisServer) -> str:
    base = redis_server.url.rsplit("/", 1)[0]
    return f"{base}/{STORE_DB}"


def base_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "server_url": url,
        "signing_key": "k",
        "retention_seconds": 3600,
        "max_attempts": 3,
        "inline_result_limit": 16,
        "output_limit": 64,
        "redis_socket_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Checked]]:
    """Factory: a checked store of this test's backend, with settings overrides."""
    made: list[Any] = []
    url = request.getfixturevalue("store_redis_url") if backend == "redis" else "redis://unused"

    def make(**overrides: Any) -> Checked:
        settings = base_settings(url, **overrides)
        raw = MemoryStore(settings) if backend == "memory" else RedisStore.from_url(url, settings)
        made.append(raw)
        return Checked(raw, backend)

    yield make
    for raw in made:
        raw.close()


@pytest.fixture
def store(make_store: Callable[..., Checked]) -> Checked:
    return make_store()


@pytest.fixture
def t() -> str:
    """A fresh tenant, so tests sharing the Redis database never see each other's jobs."""
    return new_tenant()


@pytest.fixture
def xfail_on(backend: str, request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """xfail_on(backend, reason): a strict xfail for one backend only (a discrepancy)."""

    def mark(which: str, reason: str) -> None:
        if backend == which:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    return mark


def count_requests(store: RedisStore) -> list[int]:
    """A list that grows by one per request the store's next connection sends."""
    pool = store.redis.connection_pool
    conn = pool.get_connection()  # the one the next step gets (the pool reuses it)
    pool.release(conn)
    sent: list[int] = []
    send = conn.send_packed_command
    conn.send_packed_command = lambda *a, **k: (sent.append(1), send(*a, **k))[1]  # type: ignore[method-assign]
    return sent
