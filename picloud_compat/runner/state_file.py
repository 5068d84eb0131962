"""What a job process tells its warden: the state file, and the names of processes.

A job stuck in a C call holds the GIL, so only another process (the warden: the
Celery worker's main process, or the simulator's parent) can stop it reliably. The
runner describes what it runs in a small file per process; the warden freezes the
process (SIGSTOP) before trusting what it reads, so it never acts on a torn record.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DRAIN_MARKER = "draining"
"""A file in the worker's state dir: present once the worker was told to stop."""
TASK_EVENTS_MARKER = "task-events"
"""A file in the worker's state dir: present while the worker sends task events (Flower
switched them on), which pauses the fast start (`runner.fast_start`) and the linger
after stealing (`runner.stealing`): Flower then shows each job in its own task."""


def marker_check(state_dir: Path | None, marker: str) -> Callable[[], bool]:
    """Whether the worker owning `state_dir` has `marker` (e.g. `DRAIN_MARKER`) now."""
    if state_dir is None:
        return lambda: False
    path = str(state_dir / marker)
    return lambda: os.path.exists(path)


def drain_check(state_dir: Path | None) -> Callable[[], bool]:
    """Whether the worker owning `state_dir` is draining (scaling in)."""
    return marker_check(state_dir, DRAIN_MARKER)


def worker_name(pid: int | None = None) -> str:
    """The name a job process has in job records and leases: ``host:pid``."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass(frozen=True)
class RunnerIdentity:
    """Who runs jobs (this process) and who can kill it (its warden)."""

    worker: str  # host:pid of the process running jobs
    warden: str  # id of the supervisor that can kill that process
    state_dir: Path | None  # where the warden looks for our state file


class JobStateSink(Protocol):
    """Where a runner says what it runs: its `StateFile`, or (in an executor, which
    must not write what its warden trusts) the pool process that writes it."""

    def push(self, chunk: str) -> None:
        """A chunk starts."""
        ...

    def pop(self) -> None:
        """The innermost chunk ended."""
        ...

    def set_job(
        self, tenant: str, jid: int, token: str, pid: int, started: float, max_runtime: float | None
    ) -> None:
        """The job now running in the innermost chunk."""
        ...

    def clear_job(self) -> None:
        """No job runs in the innermost chunk now."""
        ...

    def close(self) -> None:
        """The runner stops."""
        ...


class StateFile:
    """What the warden reads about this process, in two fixed regions of one file.

    - chunks (written when a chunk starts or ends): the chunk keys this process holds,
      a stack, since a nested job runs inside its waiting parent;
    - job (written twice per job, so kept to one short line): the job running now, as
      ``jid token pid started max_runtime tenant``, or blank between jobs.

    Writes are single `pwrite`s of whole regions; the warden freezes the process
    (SIGSTOP) before trusting what it reads, so it never acts on a torn record.
    """

    CHUNKS_SIZE = 896
    JOB_SIZE = 128
    _BLANK_JOB = b" " * JOB_SIZE

    def __init__(self, directory: Path | None) -> None:
        self._fd: int | None = None
        self._chunks: list[str] = []
        self._jobs: list[bytes] = []  # the job line of each stacked chunk
        if directory is not None:
            path = directory / str(os.getpid())
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def push(self, chunk: str) -> None:
        """A chunk starts (nested chunks stack inside their waiting parent's)."""
        self._chunks.append(chunk)
        self._jobs.append(self._BLANK_JOB)
        self._write_chunks()

    def pop(self) -> None:
        """The innermost chunk ended."""
        self._chunks.pop()
        self._jobs.pop()
        self._write_chunks()

    def set_job(
        self,
        tenant: str,
        jid: int,
        token: str,
        pid: int,
        started: float,
        max_runtime: float | None,
    ) -> None:
        """Describe the job now running in the innermost chunk."""
        line = f"{jid} {token} {pid} {started:.3f} {max_runtime or 0:g} {tenant}".encode()
        if len(line) > self.JOB_SIZE:
            raise ValueError(f"a job line longer than {self.JOB_SIZE} bytes: {line[:60]!r}")
        self._jobs[-1] = line.ljust(self.JOB_SIZE)
        if self._fd is not None:
            os.pwrite(self._fd, self._jobs[-1], self.CHUNKS_SIZE)

    def clear_job(self) -> None:
        """No job runs in the innermost chunk now."""
        self._jobs[-1] = self._BLANK_JOB
        if self._fd is not None:
            os.pwrite(self._fd, self._BLANK_JOB, self.CHUNKS_SIZE)

    def _write_chunks(self) -> None:
        if self._fd is None:
            return
        # Jobs of outer chunks (parents helping a nested job) cannot change while the
        # inner one runs, so they are written with the chunk stack.
        outer = [line.decode().strip() for line in self._jobs[:-1] if line.strip()]
        data = json.dumps({"chunks": self._chunks, "outer": outer}).encode()
        if len(data) > self.CHUNKS_SIZE:  # never spill into the job region
            data = json.dumps({"chunks": self._chunks, "outer": []}).encode()
        job = self._jobs[-1] if self._jobs else self._BLANK_JOB
        os.pwrite(self._fd, data.ljust(self.CHUNKS_SIZE) + job, 0)

    def close(self) -> None:
        """Blank the file and close it (the process stops running jobs)."""
        if self._fd is not None:
            os.pwrite(self._fd, b" " * (self.CHUNKS_SIZE + self.JOB_SIZE), 0)
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class RunningJob:
    """One attempt of one job, as a state file describes it."""

    tenant: str
    jid: int
    token: str
    pid: int  # the process running it (a `_kill_process` job's forked child)
    started: float
    max_runtime: float | None  # seconds


@dataclass(frozen=True)
class ProcessState:
    """A job process as its warden sees it: chunks held, jobs running (outermost first:
    a parent helping a nested job comes before it)."""

    path: Path
    chunks: tuple[str, ...]
    jobs: tuple[RunningJob, ...]

    @property
    def pid(self) -> int:
        """The job process (the file is named after it)."""
        return int(self.path.name)


def read_state(path: Path) -> ProcessState | None:
    """The warden's view of a job process, None if it holds no chunk."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        head = json.loads(raw[: StateFile.CHUNKS_SIZE] or b"{}")
    except ValueError:
        return None
    if not isinstance(head, dict) or not head.get("chunks"):
        return None
    lines = [*head.get("outer", []), raw[StateFile.CHUNKS_SIZE :].decode(errors="replace")]
    jobs = tuple(job for job in map(_parse_job, lines) if job is not None)
    return ProcessState(path, tuple(head["chunks"]), jobs)


def _parse_job(line: str) -> RunningJob | None:
    """The job a line describes; None for a blank or unreadable one (one bad line must
    never stop the warden, which serves every process of the worker)."""
    fields = line.split()
    if len(fields) != 6:
        return None
    jid, token, pid, started, max_runtime, tenant = fields
    try:
        limit = float(max_runtime) or None
        return RunningJob(tenant, int(jid), token, int(pid), float(started), limit)
    except ValueError:
        return None
