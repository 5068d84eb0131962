"""Per-process state of a Celery worker: created lazily, after the pool forks.

The main process owns a store connection for recovery and the warden; each pool
process owns its own store connection and `ChunkRunner`. Jobs that call ``cloud``
themselves get a client for their own tenant (`job_client`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from picloud_compat import client as client_module
from picloud_compat import helping
from picloud_compat.runner import ChunkRunner, RunnerIdentity, worker_name
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.store.redis_store import RedisJobStore

STATE_DIR_ENV = "PICLOUD_STATE_DIR"
WARDEN_ENV = "PICLOUD_WARDEN"


@functools.cache
def settings() -> Settings:
    from picloud_compat.errors import ConfigurationError

    s = Settings.load()
    if not s.server_url:
        raise ConfigurationError("workers need PICLOUD_SERVER_URL (the cluster's Redis URL)")
    if not s.signing_key:
        raise ConfigurationError("workers need PICLOUD_SIGNING_KEY (shared with clients)")
    return s


_stores: dict[int, RedisJobStore] = {}


def store() -> RedisJobStore:
    """This process's store (one per pid: a forked child never reuses its parent's)."""
    pid = os.getpid()
    existing = _stores.get(pid)
    if existing is None:
        s = settings()
        existing = _stores[pid] = RedisJobStore.from_url(s.server_url or "", s)
    return existing


main_store = store


@functools.cache
def _codec(pid: int, tenant: str) -> Codec:
    s = settings()
    return Codec(Signer(s.signing_key or "", tenant), s.max_transmit_data)


def codec_for(tenant: str) -> Codec:
    return _codec(os.getpid(), tenant)


_runners: dict[int, ChunkRunner] = {}


def runner() -> ChunkRunner:
    pid = os.getpid()
    existing = _runners.get(pid)
    if existing is None:
        _install_job_client()
        state_dir = os.environ.get(STATE_DIR_ENV)
        identity = RunnerIdentity(
            worker=worker_name(),
            warden=os.environ.get(WARDEN_ENV, worker_name()),
            state_dir=Path(state_dir) if state_dir and Path(state_dir).is_dir() else None,
        )
        existing = _runners[pid] = ChunkRunner(store(), settings(), codec_for, identity)
        helping.register_runner(existing)
    return existing


def tenant_client(tenant: str) -> client_module.Client:
    """A client acting as `tenant` on this worker's Redis (crons, REST)."""
    return client_module.Client.for_cluster(settings(), tenant, store())


def _install_job_client() -> None:
    """Jobs calling `cloud.*` act as their own tenant, on this worker's Redis."""
    client_module.set_job_client_factory(tenant_client)
