"""The values that cross the store's door, in both directions.

A store deals in these records and in sealed bytes; it never unpickles anything.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from picloud_compat.config.compute_types import QUEUES

MAX_JID = 10**13
"""Jids stay below this: Lua prints larger numbers in exponent form (key names would
collide), and a bound keeps any one caller from making a script loop for minutes."""


def utc_day(when: float | None = None) -> str:
    """The UTC date usage is counted on (``2026-11-30``)."""
    import datetime as dt

    moment = dt.datetime.now(dt.UTC) if when is None else dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.strftime("%Y-%m-%d")


MAX_CHUNK = 4096
"""Jobs per chunk at most (clients make chunks of up to 256)."""
MAX_CHUNKS = 256
"""Chunks one submission may make (each is a message and a ledger entry: a bound keeps
one request from making a script publish thousands)."""

RECORD_FIELDS: dict[str, str] = {
    "status": "status",
    "created": "created",
    "started": "started",
    "finished": "finished",
    "runtime": "runtime",
    "exception": "exc",
    "attempts": "att",
    "worker": "worker",
    "parent": "parent",
    "spec": "opts",
    "cputime.user": "cu",
    "cputime.system": "cs",
    "memory.max_usage": "mm",
    "memory.failcnt": "mf",
}
"""The fields `info()` can return besides the output streams, and where each is kept:
the job hash's field on Redis (see ``lua/lib.lua``), the job dict's key in memory."""
OUTPUT_FIELDS = ("stdout", "stderr", "profile")

JobEntry = dict[str, object]
"""`info()` answer for one job: requested record fields and outputs, by name."""

RecordKind = Literal["cron", "rest", "env"]
"""Named per-tenant records that carry a stored function."""


@dataclass(frozen=True)
class ChunkRef:
    """A contiguous range of one tenant's jids, delivered to workers as one message."""

    tenant: str
    first: int
    count: int

    def __post_init__(self) -> None:
        """A chunk names keys and ledger entries: integers only (a caller may send it)."""
        if not (_is_int(self.first) and _is_int(self.count)):
            raise ValueError(f"a chunk is a range of jids, got {self.first!r}+{self.count!r}")
        if not (
            self.first >= 1 and 1 <= self.count <= MAX_CHUNK and self.first + self.count <= MAX_JID
        ):
            raise ValueError(f"a chunk is up to {MAX_CHUNK} jids below {MAX_JID}, got {self.key}")
        if not isinstance(self.tenant, str):
            raise ValueError(f"a chunk's tenant is a name, got {self.tenant!r}")

    @property
    def jids(self) -> range:
        """The jids of the chunk, in order."""
        return range(self.first, self.first + self.count)

    @property
    def key(self) -> str:
        """Cluster-wide name of the chunk (ledger, leases, state files)."""
        return f"{self.tenant}/{self.first}+{self.count}"

    @classmethod
    def parse(cls, key: str) -> ChunkRef:
        """The chunk named by `key` (the inverse of `ChunkRef.key`)."""
        tenant, _, rng = key.rpartition("/")
        first, _, count = rng.partition("+")
        return cls(tenant, int(first), int(count))


@dataclass
class Submission:
    """One chunk of jobs sharing a function and a spec (a `call` is a chunk of one)."""

    cid: str  # the submitting client, which gets completion notices
    fn_sha: str
    fn_blob: bytes | None  # None when the client believes the store has it already
    spec_id: str
    spec_json: str
    queue: str
    priority: int
    depends_on: tuple[int, ...]
    depends_on_errors: str
    args: Sequence[bytes | memoryview]  # one sealed blob per job (a view: not copied)
    display_name: str  # what Flower shows for the chunk
    label: str | None = None
    first: int | None = None  # pre-allocated jids (map); None allocates (call)
    parent: int | None = None  # the jid submitting this, for nested jobs
    env: str | None = None  # the environment (`_env`) its jobs run in: named in the message
    chunks: tuple[int, ...] = ()
    """The jobs split into chunks of these sizes, in order (each its own message, lease
    and ledger entry), so a small map is one request: one allocation and one script
    instead of a round trip per chunk. Empty: one chunk of every job."""

    def __post_init__(self) -> None:
        """Refuse what no client makes but a caller could: the queue becomes a Redis
        key a message is pushed onto, and jids become key names and ledger entries."""
        if self.queue not in QUEUES:
            raise ValueError(f"unknown compute type {self.queue!r}")
        if not _is_int(self.priority):
            raise ValueError(f"priority must be an integer, got {self.priority!r}")
        for name in ("first", "parent"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and 1 <= value < MAX_JID):
                raise ValueError(f"{name} must be a jid (an integer >= 1), got {value!r}")
        if not all(_is_int(j) and 1 <= j < MAX_JID for j in self.depends_on):
            raise ValueError(f"depends_on must hold jids, got {self.depends_on!r}")
        if not 1 <= len(self.args) <= MAX_CHUNK:
            raise ValueError(f"a chunk has 1 to {MAX_CHUNK} jobs, got {len(self.args)}")
        if self.first is not None and self.first + len(self.args) > MAX_JID:
            raise ValueError(f"jids stay below {MAX_JID}")
        if not all(isinstance(a, bytes | memoryview) for a in self.args):
            raise ValueError("arguments must be sealed blobs")
        if not isinstance(self.chunks, tuple):
            raise ValueError(f"chunks must be a tuple of chunk sizes, got {self.chunks!r}"[:200])
        if len(self.chunks) > MAX_CHUNKS:
            raise ValueError(
                f"a submission makes at most {MAX_CHUNKS} chunks, not {len(self.chunks)}"
            )
        if self.chunks and not (
            all(_is_int(n) and n >= 1 for n in self.chunks) and sum(self.chunks) == len(self.args)
        ):
            raise ValueError(
                f"chunks must be sizes of at least 1 adding up to the {len(self.args)} jobs, "
                f"got {self.chunks!r}"
            )

    def chunk_sizes(self) -> tuple[int, ...]:
        """The sizes of the chunks this submission makes, in jid order."""
        return self.chunks or (len(self.args),)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Settlement:
    """A runner's last outcomes of a chunk and the chunk's end, left for its next store
    call (its own steal: the same worker's lease) to carry: one round trip between two
    chunks, not two."""

    chunk: ChunkRef
    outcomes: tuple[Outcome, ...]
    ran_all: bool  # the runner claimed every job of the chunk itself


@dataclass
class ClaimedJob:
    """A job moved to `processing` for one runner: what it needs to start it."""

    jid: int
    attempt: int
    spec_id: str
    args: bytes


@dataclass
class Claim:
    """What one claim round trip took, and where the next one starts."""

    next_index: int
    jobs: list[ClaimedJob] = field(default_factory=list)
    kill_generation: int = 0  # the worker's, read with the claim (see RunnerStore)


class StealMiss(enum.Enum):
    """Why a steal took nothing (`runner.stealing`)."""

    QUIET = "quiet"
    """No offered job is queued: new work will announce itself with a wake-up token."""
    PENDING = "pending"
    """Offered jobs are queued that only their chunk's message will run."""


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
    cpu_user: float = 0.0  # CPU seconds (user), the job and its children
    cpu_system: float = 0.0  # CPU seconds (kernel)
    memory_peak: int = 0  # bytes at most, the job and its children (0: not measured)
    memory_failcnt: int = 0  # times the job hit its memory limit

    def __post_init__(self) -> None:
        """An executor sends these: only a finished status, with values of their types."""
        if self.status not in ("done", "error") or not _is_int(self.jid):
            raise ValueError(f"not an outcome: job {self.jid!r} {self.status!r}")
        # one flat expression: every job's outcome passes here
        if not (
            isinstance(self.token, str)
            and isinstance(self.stdout, str)
            and isinstance(self.stderr, str)
            and (self.exception is None or isinstance(self.exception, str))
            and (self.profile is None or isinstance(self.profile, str))
            and isinstance(self.runtime, int | float)
            and isinstance(self.cpu_user, int | float)
            and isinstance(self.cpu_system, int | float)
            and _is_int(self.memory_peak)
            and _is_int(self.memory_failcnt)
            and (self.result is None or isinstance(self.result, bytes))
        ):
            raise ValueError(f"outcome of job {self.jid} has a value of the wrong type")


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

    def add(self, other: WorkerLoss) -> None:
        """Fold another recovery into this total."""
        self.requeued += other.requeued
        self.errored += other.errored
        self.republished = self.republished or other.republished


@dataclass(frozen=True)
class KillRequest:
    """Ask a warden to stop the process running one attempt of one job."""

    tenant: str
    jid: int
    worker: str  # host:pid of the process running it
    token: str  # the attempt


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker's registration (its warden's heartbeat)."""

    name: str
    queues: tuple[str, ...]
    concurrency: int
    seen: float
    runtime: str = ""  # Python and cloudpickle versions its job processes run
    busy: int = 0  # of its processes, how many were running a chunk at the heartbeat
    environments: tuple[str, ...] = ()  # built before it started (KEY:NAME): --env


RUNTIME_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0)
"""Upper bounds (seconds) of the job runtime histogram; the last bucket is +Inf."""


@dataclass(frozen=True)
class ClusterMetrics:
    """What an autoscaler and an operator watch, read in one pass over the store."""

    backlog: dict[tuple[str, int], int]  # (compute type, priority) -> chunk messages waiting
    in_flight: int  # chunks being run (leased)
    workers: list[WorkerInfo]
    finished: dict[str, int]  # status -> jobs that ended so, since the store began
    runtime_buckets: list[int]  # jobs per RUNTIME_BUCKETS slot (+ one for +Inf)
    runtime_sum: float
    requeued: int  # jobs put back in the queue after their worker was lost
    lost: int  # jobs that failed because their worker was lost too often


@dataclass(frozen=True)
class QueueService:
    """Who serves a compute type now: live job processes, and the runtimes they run
    (what a client checks before its jobs wait for nobody, or for workers that cannot
    load them)."""

    processes: int
    runtimes: tuple[str, ...] = ()
    largest: int = 0  # processes of the biggest live worker: the most `_cores` one job gets
    environments: tuple[str, ...] = ()  # prebuilt by some of them (KEY:NAME)


@dataclass(frozen=True)
class Account:
    """An API key as stored: only a hash of its secret."""

    api_key: str
    secret_hash: str
    active: bool
    created: float
    note: str = ""


def storable(text: str) -> str:
    """`text` as it can be stored: characters UTF-8 cannot encode (lone surrogates, e.g.
    from an undecodable file name or a REST body) are kept as backslash escapes.

    Both stores apply this to every text a job produces, so one job's odd output can
    never make a batch of outcomes fail to save, and both read it back the same.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class MissingFunction(Exception):
    """The store no longer has the function blob the client thought it had sent."""
