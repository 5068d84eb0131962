"""The job store contract, split by who asks: client, runner, supervisor, records.

Two implementations honour every role with identical signatures: `RedisStore` (Lua
scripts, for the cluster) and `MemoryStore` (a lock and dicts, for the simulator and
``cloud.mp``). `tests/store/` runs one body of contract tests against both, calling
these methods directly. Each consumer depends on the narrowest role it needs, so a
reader sees at a glance what a module may do to the store.

Every state change that involves more than one key is atomic: submitting (with its
dependency checks), claiming, finishing (with dependency release and stall
propagation), killing, deleting and recovering a lost worker's chunk. Status moves
follow `picloud_compat.status.TRANSITIONS`. Times are Unix seconds (float).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from picloud_compat.store.records import (
    Account,
    ChunkRef,
    Claim,
    ClusterMetrics,
    JobEntry,
    KillRequest,
    Notice,
    Outcome,
    QueueService,
    RecordKind,
    Submission,
    WorkerInfo,
    WorkerLoss,
)


class ClientStore(Protocol):
    """What a client (or the gateway acting for one tenant) asks of the store."""

    def allocate(self, t: str, count: int) -> int:
        """Reserve `count` consecutive jids for tenant `t`; return the first."""
        ...

    def submit(self, t: str, sub: Submission) -> int:
        """Create the jobs atomically and queue their chunks (one, or `sub.chunks`);
        return the first jid.

        Jobs start `waiting` if a dependency is unfinished, `stalled` if one failed
        (unless ``depends_on_errors == 'ignore'``), else `queued`. Raises
        UnknownJobError for a nonexistent dependency (nothing is written),
        MissingFunction if `fn_blob` is None and the store lacks the function, and
        InvalidCredentials for a deactivated key.
        """
        ...

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        """Status per jid, None for unknown jids."""
        ...

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[JobEntry | None]:
        """Requested record fields and outputs per jid, None for unknown jids."""
        ...

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        """Sealed result blobs (None if absent)."""
        ...

    def spec(self, t: str, spec_id: str) -> str | None:
        """The JSON job spec a submission stored (parse it with `JobSpec.from_json`)."""
        ...

    def function(self, t: str, sha: str) -> bytes | None:
        """The sealed function blob."""
        ...

    def kill(self, t: str, jids: Sequence[int] | None, reason: str = "Killed") -> list[int]:
        """Kill unfinished jobs (all of the tenant's if None); return those killed."""
        ...

    def delete(self, t: str, jids: Sequence[int]) -> None:
        """Remove finished jobs' data. Raises CloudException (nothing deleted) if any
        is unfinished, UnknownJobError if any does not exist."""
        ...

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        """Ask for notices about jobs another client submitted; returns current
        statuses (finished ones will not be notified)."""
        ...

    def pop_notices(self, t: str, cid: str, timeout: float, wanted: int = 1) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`.

        `wanted` > 1 arms a hold: the store may keep 'done' notices back from this pop
        until that many have come (or one that is not 'done'), and at the timeout returns
        what came. A plain pop (`wanted` 1) gets every notice at once, held or not."""
        ...

    def unfinished(self, t: str) -> list[int]:
        """Jids of the tenant's jobs that have not finished."""
        ...

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        """(jid, status, spec id) of every job of the tenant (a scan: not a hot path)."""
        ...

    def concurrency(self, queue: str) -> int:
        """Processes serving `queue` (at least 2), for sizing map chunks."""
        ...

    def service(self, queue: str) -> QueueService:
        """Live processes serving `queue` (0 if none) and the runtimes they run."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


class RunnerStore(Protocol):
    """What a job process running chunks asks of the store."""

    def claim(
        self,
        chunk: ChunkRef,
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        """Move up to `max_jobs` queued jobs of `chunk` (from index `start`) to
        processing under `token`, and take a lease on the chunk for `worker`."""
        ...

    def finish(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        worker: str,
        end: bool,
        ran_all: bool = False,
    ) -> None:
        """Record outcomes whose token still owns the job (first writer wins), release
        or stall dependents, notify waiters. With `end`, drop the lease and, if every
        job of the chunk is finished (known without looking when `ran_all`: this runner
        claimed every job of the chunk), the chunk's ledger entry."""
        ...

    def advance(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        """`finish` the outcomes, then `claim` from `start`, in one step: a runner going
        from one slow job to the next pays one round trip, not two. A claim that finds
        nothing left ends the chunk, as `finish` with `end` would."""
        ...

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        """Give back claimed jobs that never started (their attempt is not counted)."""
        ...

    def hand_back(self, chunk: ChunkRef, worker: str) -> WorkerLoss:
        """A draining runner stops early: republish `chunk` if jobs of it are queued
        (after `unclaim` gave back those it had not started). Jobs `worker` still
        holds in it are treated as in `recover`."""
        ...

    def kill_generation(self, worker: str) -> int:
        """A counter that grows whenever a job `worker` holds is killed or recovered
        from it. `claim` returns it too; while a runner starts the claimed jobs one by
        one it re-reads it, and re-checks the jobs themselves only when it moved."""
        ...

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        """Stream output of a running job so `info()` can show it live."""
        ...

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        """Status per jid (the runner re-checks claimed jobs before starting them)."""
        ...

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[JobEntry | None]:
        """Record fields per jid (the runner checks who holds a claimed job)."""
        ...

    def spec(self, t: str, spec_id: str) -> str | None:
        """The JSON job spec of a claimed job."""
        ...

    def function(self, t: str, sha: str) -> bytes | None:
        """The sealed function of a claimed job."""
        ...


class SupervisionStore(Protocol):
    """What a warden (the process that owns job processes) asks of the store."""

    def pop_kill_requests(self, warden: str, timeout: float) -> list[KillRequest]:
        """Block up to `timeout` for kill requests addressed to `warden`."""
        ...

    def kill(self, t: str, jids: Sequence[int] | None, reason: str = "Killed") -> list[int]:
        """Kill jobs with a reason (an overrun of ``_max_runtime``)."""
        ...

    def renew_leases(self, chunks: Sequence[tuple[ChunkRef, str]], ttl: float) -> None:
        """Extend leases of chunks being run by (chunk, worker) pairs."""
        ...

    def recover(self, chunk: ChunkRef, dead_worker: str, reason: str) -> WorkerLoss:
        """A worker died while running `chunk`: requeue its restartable jobs (up to the
        attempt cap), fail the others with `reason`, and republish the chunk."""
        ...

    def recover_worker(self, dead_worker: str, reason: str) -> WorkerLoss:
        """A job process died: recover every chunk it held and every job it ran.
        (On Redis, chunks held by a dead process are found by their lapsing leases.)"""
        ...

    def reap(self, now: float) -> list[str]:
        """One pass making sure no job stays queued or processing forever: recover
        chunks whose lease lapsed, republish chunks lost in delivery. Returns what it
        did, one line each (for the log)."""
        ...

    def heartbeat(self, info: WorkerInfo) -> None:
        """Register (or refresh) a live worker."""
        ...

    def forget_worker(self, name: str) -> None:
        """A worker shut down cleanly."""
        ...

    def live_workers(self) -> list[WorkerInfo]:
        """Workers seen recently."""
        ...

    def metrics(self) -> ClusterMetrics:
        """Backlog per compute type and priority, chunks in flight, live workers, and
        the counters of finished jobs, runtimes and losses (for /metrics)."""
        ...


class RecordStore(Protocol):
    """Durable records besides jobs: crons and REST endpoints per tenant, API keys."""

    def save_record(
        self,
        t: str,
        kind: RecordKind,
        label: str,
        fields: dict[str, str],
        function: bytes,
        replace: bool,
    ) -> bool:
        """Store a record with its sealed function; False (nothing written) if it
        exists and not `replace`."""
        ...

    def record(self, t: str, kind: RecordKind, label: str) -> dict[str, str] | None:
        """A record's fields, None if absent."""
        ...

    def record_function(self, t: str, kind: RecordKind, label: str) -> bytes | None:
        """A record's sealed function."""
        ...

    def update_record(self, t: str, kind: RecordKind, label: str, fields: dict[str, str]) -> None:
        """Merge fields into an existing record (no-op if it is gone)."""
        ...

    def delete_record(self, t: str, kind: RecordKind, label: str) -> bool:
        """Remove a record and its function; False if there was none."""
        ...

    def record_labels(self, t: str, kind: RecordKind) -> list[str]:
        """Labels of the tenant's records of `kind`, sorted."""
        ...

    def record_owners(self, kind: RecordKind) -> list[str]:
        """Tenants having records of `kind` (the simulator's cron clock scans these)."""
        ...

    def claim_once(self, t: str, name: str, ttl: float) -> bool:
        """True for the first caller naming `name` within `ttl` seconds (cron firings)."""
        ...

    def create_account(self, secret_hash: str, note: str, created: float) -> str:
        """A new active API key (a number as a string) with the given secret hash."""
        ...

    def account(self, api_key: str) -> Account | None:
        """One API key, None if it does not exist."""
        ...

    def accounts(self) -> list[Account]:
        """Every API key, by number."""
        ...

    def usage(self, t: str) -> dict[str, tuple[int, float]]:
        """{UTC day: (jobs that ran to an outcome, their CPU seconds)} of a tenant."""
        ...

    def set_account_active(self, api_key: str, active: bool) -> bool:
        """(De)activate a key everywhere at once; False if it does not exist."""
        ...


class TenantStore(ClientStore, RecordStore, Protocol):
    """What a client acting for one tenant uses: its jobs, crons and REST endpoints."""


class BrowseStore(Protocol):
    """What the dashboard reads besides the client's role: where a tenant's jids end,
    and a job's sealed arguments (summarised there without being unpickled)."""

    def last_jid(self, t: str) -> int:
        """The highest jid allocated to the tenant (0 if none): jids grow with time, so
        pages of the newest jobs are read below it without any index."""
        ...

    def arguments(self, t: str, jid: int) -> bytes | None:
        """A job's sealed (args, kwargs) blob, None if the job or its arguments are gone."""
        ...


class JobProcessStore(RunnerStore, TenantStore, Protocol):
    """What a job process uses: running chunks, and nested jobs for the job's tenant."""


class Store(ClientStore, RunnerStore, SupervisionStore, RecordStore, BrowseStore, Protocol):
    """Every role: what a backend implements in full."""
