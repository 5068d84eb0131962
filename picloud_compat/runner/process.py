"""One job-process bootstrap, shared by Celery pool processes and simulator processes.

A job process needs: settings, a store (Redis, or the simulator's over RPC), a codec
per tenant, a `ChunkRunner` that tells its warden what it runs, nested-job helping,
and a client factory so jobs calling ``cloud.*`` act as their own tenant. Building all
of that lives here once; the two entry points differ only in where the store and the
warden's name come from.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from picloud_compat.client import session
from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import ClusterMode
from picloud_compat.errors import ConfigurationError
from picloud_compat.files.blobs import blob_offload
from picloud_compat.runner import helping
from picloud_compat.runner.chunk import ChunkRunner
from picloud_compat.runner.leases import LeaseRenewal
from picloud_compat.runner.slots import Cores
from picloud_compat.runner.state_file import (
    TASK_EVENTS_MARKER,
    JobStateSink,
    RunnerIdentity,
    drain_check,
    marker_check,
    worker_name,
)
from picloud_compat.runner.stealing import StealingStore, Thief, WakeUpSource, served_types
from picloud_compat.runner.wake_ups import process_wake_ups
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.store.contract import JobProcessStore
from picloud_compat.store.records import ChunkRef

if TYPE_CHECKING:
    from picloud_compat.runner.executor_pool import ExecutorPool
    from picloud_compat.store.redis import RedisStore
    from picloud_compat.store.remote.scope import Services

STATE_DIR_ENV = "PICLOUD_STATE_DIR"
"""Set by the Celery worker's main process before forking: where state files go."""
WARDEN_ENV = "PICLOUD_WARDEN"
"""Set likewise: the warden's name (kill requests are addressed to it)."""


class JobProcess:
    """Everything one job process runs jobs with, built once after the fork."""

    def __init__(
        self,
        settings: Settings,
        store: JobProcessStore,
        identity: RunnerIdentity,
        job_client: Callable[[str], Client],
        *,
        codec_for: Callable[[str], Codec] | None = None,
        state: JobStateSink | None = None,
        draining: Callable[[], bool] | None = None,
        cores: Cores | None = None,
        refusal: str | None = None,
        stealing: StealingStore | None = None,
        served: Sequence[str] = (),
        renew_leases: LeaseRenewal | None = None,
    ) -> None:
        """`codec_for`, `state` and `cores` replace the defaults (a codec per tenant from
        the cluster secret, this process's state file, the worker's slot files) in an
        executor, which has none of them. With `stealing`, this process takes jobs of
        offered chunks of the `served` compute types once it finished its own chunk."""
        self.settings = settings
        self.store = store
        self.identity = identity
        draining = draining or drain_check(identity.state_dir)
        self.runner = ChunkRunner(
            store,
            settings,
            codec_for or self.codec_for,
            identity,
            state=state,
            draining=draining,
            cores=cores,
            refusal=refusal,
            renew_leases=renew_leases,
        )
        self.thief = None
        if stealing is not None:

            def wake_ups() -> WakeUpSource | None:
                return process_wake_ups(settings, served, identity.worker)

            watched = marker_check(identity.state_dir, TASK_EVENTS_MARKER)
            linger = settings.steal_linger
            self.thief = Thief(stealing, served, draining, wake_ups, linger, watched)
        self._failed: list[tuple[int, str]] = []
        helping.register_runner(self.runner)
        session.set_job_client_factory(job_client)

    @functools.cache  # noqa: B019 - one per tenant for the life of the process
    def codec_for(self, tenant: str) -> Codec:
        """The tenant's codec (its signing key), cached."""
        signer = Signer(self.settings.signing_key or "", tenant)
        offload = blob_offload(self.settings, tenant)  # big results to S3 (team mode)
        return Codec(signer, self.settings.max_transmit_data, offload)

    def run(self, chunk: ChunkRef, compute_type: str = "") -> int:
        """Run the chunk's still-queued jobs, then (with stealing) jobs of other chunks;
        how many ran here."""
        if self.thief is None:
            ran = self.runner.run(chunk)
            self._failed = self.runner.failed
            return ran
        try:  # the chunk's end rides with the thief's first steal
            ran = self.runner.run(chunk, settle_later=True)
            self._failed = self.runner.failed
            stolen, stolen_failed = self.thief.take(self.runner, compute_type)
        finally:
            self.runner.settle()
        self._failed = self._failed + stolen_failed
        return ran + stolen

    def take_work(self, interrupted: Callable[[], bool]) -> int:
        """Run jobs of offered chunks (a woken idle process: `runner.fast_start`) until
        none is left or `interrupted()`."""
        if self.thief is None:
            return 0
        ran, _ = self.thief.take(self.runner, "", interrupted, linger=False)
        return ran

    @property
    def failed(self) -> list[tuple[int, str]]:
        """Jobs of the last `run` that ended `error`, with their exception's last line."""
        return self._failed


def worker_settings() -> Settings:
    """A Celery worker's settings; ConfigurationError naming what is missing."""
    s = Settings.load()
    if not s.server_url:
        raise ConfigurationError("workers need PICLOUD_SERVER_URL (the cluster's Redis URL)")
    if not s.signing_key:
        raise ConfigurationError("workers need PICLOUD_SIGNING_KEY (shared with clients)")
    return s


_stores: dict[int, Any] = {}
_celery_processes: dict[int, JobProcess | ExecutorPool] = {}
_env_pools: dict[int, ExecutorPool] = {}


def cluster_store() -> RedisStore:
    """This process's connection to the cluster (one per pid: forks never share one)."""
    from picloud_compat.store.redis import RedisStore  # not in simulator job processes

    pid = os.getpid()
    existing = _stores.get(pid)
    if existing is None:
        settings = worker_settings()
        existing = _stores[pid] = RedisStore.from_url(settings.server_url or "", settings)
    return existing


def celery_env_pool(services_for: Callable[[str], Services]) -> ExecutorPool:
    """This pool process's executors for jobs with an environment (``_env``), which run
    in the environment's interpreter. Tenant isolation uses its one pool for every job;
    the shared mode keeps running other jobs in this process."""
    runner = celery_job_process(services_for)
    if not isinstance(runner, JobProcess):
        return runner
    pid = os.getpid()
    existing = _env_pools.get(pid)
    if existing is None:
        from picloud_compat.runner.executor_pool import ExecutorPool

        existing = _env_pools[pid] = ExecutorPool(
            worker_settings(), cluster_store(), runner.identity, services_for
        )
    return existing


def celery_job_process(
    services_for: Callable[[str], Services] | None = None,
) -> JobProcess | ExecutorPool:
    """This Celery pool process's runner (one per pid: a fork never reuses it): the jobs
    run here (``isolation = "shared"``) or in executors it keeps (``"tenant"``), whose
    files and cron calls `services_for(tenant)` answers (given by the task module)."""
    pid = os.getpid()
    existing = _celery_processes.get(pid)
    if existing is None:
        settings = worker_settings()
        store = cluster_store()
        state_dir = os.environ.get(STATE_DIR_ENV)
        identity = RunnerIdentity(
            worker=worker_name(),
            warden=os.environ.get(WARDEN_ENV, worker_name()),
            state_dir=Path(state_dir) if state_dir and Path(state_dir).is_dir() else None,
        )
        if settings.isolation == "tenant":
            from picloud_compat.runner.executor_pool import ExecutorPool

            if services_for is None:
                raise ConfigurationError("tenant isolation needs the tenants' services")
            existing = _celery_processes[pid] = ExecutorPool(
                settings, store, identity, services_for
            )
            return existing
        mode = ClusterMode(settings)

        def job_client(tenant: str) -> Client:
            return Client(settings, store, tenant, mode, owns=False)

        existing = _celery_processes[pid] = JobProcess(
            settings,
            store,
            identity,
            job_client,
            stealing=store,
            served=served_types(),
            renew_leases=store.renew_leases,
        )
    return existing
