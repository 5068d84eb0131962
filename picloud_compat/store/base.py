"""The job store contract: everything the client and the runners ask of Redis.

Two implementations honour it: `RedisJobStore` (Lua scripts, for the cluster) and
`MemoryJobStore` (a lock and dicts, for the simulator and ``cloud.mp``). The same
contract tests run against both. A store deals in records and sealed bytes; it never
unpickles anything.

Every state change that involves more than one key is atomic: submitting (with its
dependency checks), claiming, finishing (with dependency release and stall
propagation), killing, deleting and recovering a lost worker's chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Fields `info()` can return, besides the output streams.
RECORD_FIELDS = (
    "status",
    "created",
    "started",
    "finished",
    "runtime",
    "exception",
    "attempts",
    "worker",
    "parent",
)
OUTPUT_FIELDS = ("stdout", "stderr", "profile")


@dataclass(frozen=True)
class ChunkRef:
    """A contiguous range of one tenant's jids, delivered to workers as one message."""

    tenant: str
    first: int
    count: int

    @property
    def jids(self) -> range:
        return range(self.first, self.first + self.count)


@dataclass
class Submission:
    """One chunk of jobs sharing a function and options (a `call` is a chunk of one)."""

    cid: str  # the submitting client, which gets completion notices
    fn_sha: str
    fn_blob: bytes | None  # None when the client believes the store has it already
    options_id: str
    options_json: str
    queue: str
    priority: int
    depends_on: tuple[int, ...]
    depends_on_errors: str
    args: Sequence[bytes]  # one sealed blob per job
    display_name: str  # what Flower shows for the chunk
    label: str | None = None
    first: int | None = None  # pre-allocated jids (map); None allocates (call)
    parent: int | None = None  # the jid submitting this, for nested jobs


@dataclass
class ClaimedJob:
    jid: int
    attempt: int
    options_id: str
    args: bytes


@dataclass
class Outcome:
    """What running one job produced; recorded only if the attempt still owns the job."""

    jid: int
    token: str
    status: str  # done | error
    result: bytes | None = None
    exception: str | None = None
    stdout: str = ""
    stderr: str = ""
    profile: str | None = None
    runtime: float = 0.0


@dataclass
class Notice:
    """A job reached a finished status; small results travel along."""

    jid: int
    status: str
    result: bytes | None = None


@dataclass
class WorkerLoss:
    """What recovering a lost worker's chunk did."""

    requeued: int = 0
    errored: int = 0
    republished: bool = False


@dataclass
class Claim:
    next_index: int
    jobs: list[ClaimedJob] = field(default_factory=list)


class MissingFunction(Exception):
    """The store no longer has the function blob the client thought it had sent."""


class JobStore(Protocol):
    """The operations both stores implement. Times are Unix seconds (float)."""

    # -- client side -------------------------------------------------------------

    def allocate(self, t: str, count: int) -> int:
        """Reserve `count` consecutive jids for tenant `t`; return the first."""

    def submit(self, t: str, sub: Submission) -> int:
        """Create the chunk's jobs atomically and queue them; return the first jid.

        Jobs start `waiting` if a dependency is unfinished, `stalled` if one failed
        (unless ``depends_on_errors == 'ignore'``), else `queued`. Raises
        UnknownJobError for a nonexistent dependency (nothing is written) and
        MissingFunction if `fn_blob` is None and the store lacks the function.
        """

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        """Status per jid, None for unknown jids."""

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[dict | None]:
        """Requested record fields and outputs per jid, None for unknown jids."""

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        """Sealed result blobs (None if absent)."""

    def options(self, t: str, options_id: str) -> str | None:
        """The JSON options document a submission stored."""

    def function(self, t: str, sha: str) -> bytes | None:
        """The sealed function blob."""

    def kill(self, t: str, jids: Sequence[int] | None) -> list[int]:
        """Kill unfinished jobs (all of the tenant's if None); return those killed."""

    def delete(self, t: str, jids: Sequence[int]) -> None:
        """Remove finished jobs' data. Raises CloudException (nothing deleted) if any
        is unfinished, UnknownJobError if any does not exist."""

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        """Ask for notices about jobs another client submitted; returns current
        statuses (finished ones will not be notified)."""

    def pop_notices(self, t: str, cid: str, timeout: float) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`."""

    def unfinished(self, t: str) -> list[int]:
        """Jids of the tenant's jobs that have not finished."""

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        """(jid, status, options id) of every job of the tenant (a scan: not a hot path)."""

    # -- runner side -------------------------------------------------------------

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

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        """Give back claimed jobs that never started (their attempt is not counted)."""

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        """Stream output of a running job so `info()` can show it live."""

    def renew_leases(self, chunks: Sequence[tuple[ChunkRef, str]], ttl: float) -> None:
        """Extend leases of chunks being run by (chunk, worker) pairs."""

    def recover(self, chunk: ChunkRef, dead_worker: str, reason: str) -> WorkerLoss:
        """A worker died while running `chunk`: requeue its restartable jobs (up to the
        attempt cap), fail the others with `reason`, and republish the chunk."""
