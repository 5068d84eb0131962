"""`ChunkRunner`: runs the jobs of one chunk message, in a worker process.

Claims jobs a batch at a time (atomic in the store; a redelivered chunk skips what is
already claimed or finished), runs each through `execution.run_job`, and records
outcomes in batches so tiny jobs cost a fraction of a round trip each. Long jobs are
recorded as soon as they end, and their output is streamed while they run.

The runner tells its *warden* (the Celery worker's main process, or the simulator's
parent) what it is running through a small state file, so the warden can renew the
chunk's lease and kill exactly the right attempt of the right job.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picloud_compat.errors import CloudException, ConnectionFailed
from picloud_compat.execution import JobContext, JobOutput, JobResult, run_job
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.store.base import ChunkRef, ClaimedJob, JobStore, Outcome

MAX_BATCH = 256
"""Jobs claimed (and outcomes recorded) per round trip when jobs are tiny."""
MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Argument bytes fetched per claim."""
FLUSH_AFTER = 0.02
"""Seconds a finished job's outcome may wait to share a round trip with others."""
TINY_JOB = 0.002
"""Jobs faster than this grow the claim batch; slower ones are recorded at once."""
OUTAGE_RETRY = 30.0
"""Seconds claims and result writes are retried while the job store is unreachable."""
RECHECK_CLAIMED = 0.005
"""Seconds after which claimed-but-unstarted jobs are re-checked (kills) before starting."""
STREAM_EVERY = 0.5
"""Seconds between live output uploads of a running job."""


def worker_name(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass(frozen=True)
class RunnerIdentity:
    worker: str  # host:pid of the process running jobs
    warden: str  # id of the supervisor that can kill that process
    state_dir: Path | None  # where the warden looks for our state file


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
        self._chunks.append(chunk)
        self._jobs.append(self._BLANK_JOB)
        self._write_chunks()

    def pop(self) -> None:
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
        line = f"{jid} {token} {pid} {started!r} {max_runtime or 0!r} {tenant}".encode()
        self._jobs[-1] = line.ljust(self.JOB_SIZE)
        if self._fd is not None:
            os.pwrite(self._fd, self._jobs[-1], self.CHUNKS_SIZE)

    def clear_job(self) -> None:
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
        job = self._jobs[-1] if self._jobs else self._BLANK_JOB
        os.pwrite(self._fd, data.ljust(self.CHUNKS_SIZE) + job, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, b" " * (self.CHUNKS_SIZE + self.JOB_SIZE), 0)
            os.close(self._fd)
            self._fd = None


def read_state(path: Path) -> dict[str, Any] | None:
    """The warden's view of a job process: {"chunks": [...], "jobs": [...]}, where each
    job is {tenant, jid, token, pid, started, max_runtime}, outermost first (a parent
    helping a nested job comes before it)."""
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
    jobs = [job for job in map(_parse_job, lines) if job is not None]
    return {"chunks": head["chunks"], "jobs": jobs}


def _parse_job(line: str) -> dict[str, Any] | None:
    fields = line.split()
    if len(fields) != 6:
        return None
    jid, token, pid, started, max_runtime, tenant = fields
    return {
        "jid": int(jid),
        "token": token,
        "pid": int(pid),
        "started": float(started),
        "max_runtime": float(max_runtime) or None,
        "tenant": tenant,
    }


class ChunkRunner:
    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        codec_for: Callable[[str], Codec],
        identity: RunnerIdentity,
    ) -> None:
        self.store = store
        self.settings = settings
        self.codec_for = codec_for
        self.identity = identity
        self._options: dict[tuple[str, str], dict[str, Any]] = {}
        self._state = StateFile(identity.state_dir)
        self._streamer = _OutputStreamer(store)
        self._output = JobOutput(settings.output_limit)  # reused: drained after each job

    def close(self) -> None:
        self._state.close()

    def run(self, chunk: ChunkRef) -> int:
        """Run every still-queued job of `chunk`; return how many ran here."""
        token = secrets.token_hex(8)
        codec = self.codec_for(chunk.tenant)
        ck = f"{chunk.tenant}/{chunk.first}+{chunk.count}"
        index, batch, ran, claimed = 0, 1, 0, 0
        pending: list[Outcome] = []
        oldest = 0.0
        self._state.push(ck)
        try:
            while index < chunk.count:
                claim = self._retrying(
                    self.store.claim,
                    chunk,
                    index,
                    batch,
                    MAX_BATCH_BYTES,
                    self.identity.worker,
                    self.identity.warden,
                    token,
                )
                index = claim.next_index
                claimed += len(claim.jobs)
                jobs = claim.jobs
                checked = time.perf_counter()
                position = 0
                while position < len(jobs):
                    job = jobs[position]
                    now = time.perf_counter()
                    if pending and now - oldest > FLUSH_AFTER:
                        # finished outcomes never wait for the next job to end
                        self._flush(chunk, pending)
                        pending = []
                    if position and now - checked > RECHECK_CLAIMED:
                        jobs = jobs[:position] + self._still_ours(chunk, jobs[position:])
                        checked = now
                        if position >= len(jobs):
                            break
                        job = jobs[position]
                    options = self._job_options(chunk.tenant, job.options_id)
                    started = time.perf_counter()
                    outcome = self._run_one(chunk, job, options, codec, token, ck)
                    ran += 1
                    if not pending:
                        oldest = started
                    pending.append(outcome)
                    slow = outcome.runtime > TINY_JOB
                    # A non-restartable job's outcome is never held back: if this process
                    # died with it unrecorded, the job would be failed as "worker lost".
                    restartable = options.get("restartable", True)
                    if slow or not restartable or len(pending) >= MAX_BATCH:
                        self._flush(chunk, pending)
                        pending = []
                    position += 1
                    batch = 1 if (slow or not restartable) else min(batch * 4, MAX_BATCH)
                    if slow and position < len(jobs):
                        # The rest of the batch would sit behind slow jobs, looking
                        # "processing": give it back and take it one job at a time.
                        rest = [j.jid for j in jobs[position:]]
                        self._retrying(self.store.unclaim, chunk, rest, token)
                        claimed -= len(rest)
                        index = rest[0] - chunk.first
                        break
            self._flush(chunk, pending, end=True, ran_all=claimed == chunk.count)
            return ran
        finally:
            self._state.pop()

    def _flush(
        self, chunk: ChunkRef, outcomes: list[Outcome], end: bool = False, ran_all: bool = False
    ) -> None:
        if outcomes or end:
            self._retrying(
                self.store.finish, chunk, outcomes, self.identity.worker, end=end, ran_all=ran_all
            )

    def _still_ours(self, chunk: ChunkRef, jobs: list[ClaimedJob]) -> list[ClaimedJob]:
        """Claimed jobs not started yet that are still ours to run (a kill may have
        landed on them meanwhile; they must then never start)."""
        entries = self._retrying(
            self.store.info, chunk.tenant, [j.jid for j in jobs], ["status", "worker"]
        )
        return [
            job
            for job, entry in zip(jobs, entries, strict=True)
            if entry
            and entry.get("status") == "processing"
            and entry.get("worker") == self.identity.worker
        ]

    def _retrying(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Ride out a short job store outage (a Redis restart) instead of dropping work:
        outcomes already computed are kept and recorded once it is back."""
        deadline = time.monotonic() + OUTAGE_RETRY
        while True:
            try:
                return operation(*args, **kwargs)
            except ConnectionFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _job_options(self, tenant: str, options_id: str) -> dict[str, Any]:
        key = (tenant, options_id)
        cached = self._options.get(key)
        if cached is None:
            raw = self.store.options(tenant, options_id)
            cached = json.loads(raw) if raw else {}
            if len(self._options) > 1024:
                self._options.clear()
            self._options[key] = cached
        return cached

    def _run_one(
        self,
        chunk: ChunkRef,
        job: ClaimedJob,
        options: dict[str, Any],
        codec: Codec,
        token: str,
        ck: str,
    ) -> Outcome:
        max_runtime = options.get("max_runtime")
        self._state.set_job(
            tenant=chunk.tenant,
            jid=job.jid,
            token=token,
            pid=os.getpid(),
            started=time.time(),
            max_runtime=None if max_runtime is None else max_runtime * 60.0,
        )

        sha = options.get("fn")
        # Fetched here, not in load(): a `_kill_process` job loads in a forked child,
        # which must not touch this process's store connection.
        blob = None
        if sha and not codec.has_function(sha):
            blob = self.store.function(chunk.tenant, sha)

        def load() -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
            if not sha:  # reported as the job's error, like any failure to load it
                raise CloudException("the job's options are gone from the job store (expired)")
            func = codec.load_function(sha, blob)
            args, kwargs = codec.load_arguments(job.args)
            return func, args, kwargs

        # A nested (helped) job gets its own streams; the outermost reuses the runner's.
        nested = self._streamer.current() is not None
        output = JobOutput(self.settings.output_limit) if nested else self._output
        context = JobContext(chunk.tenant, job.jid)
        streamer = self._streamer
        previous = streamer.current()  # a nested (helped) job resumes its parent's streaming
        streamer.begin(chunk.tenant, job.jid, output)
        try:
            if options.get("kill_process"):
                result = _run_in_fresh_process(
                    lambda: run_job(context, load, options, codec, output),
                    self._state,
                    dict(tenant=chunk.tenant, jid=job.jid, token=token),
                    max_runtime,
                )
            else:
                result = run_job(context, load, options, codec, output)
        finally:
            streamer.end()
            if previous is not None:
                streamer.begin(*previous[:3])
        self._state.clear_job()
        return Outcome(
            jid=job.jid,
            token=token,
            status=result.status,
            result=result.result,
            exception=result.exception,
            stdout=result.stdout,
            stderr=result.stderr,
            profile=result.profile,
            runtime=result.runtime,
        )


class _OutputStreamer:
    """Uploads the running job's output every STREAM_EVERY seconds, from one thread.

    The thread lives as long as the process; jobs shorter than STREAM_EVERY never
    upload anything here (their output travels with the outcome).
    """

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # held while uploading and while switching jobs
        self._job: tuple[str, int, JobOutput, float] | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, tenant: str, jid: int, output: JobOutput) -> None:
        with self._lock:
            self._job = (tenant, jid, output, time.monotonic())
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="picloud-output", daemon=True)
            self._thread.start()

    def current(self) -> tuple[str, int, JobOutput, float] | None:
        return self._job

    def end(self) -> None:
        """Stop streaming; any upload in flight lands before this returns."""
        with self._lock:
            self._job = None

    def _loop(self) -> None:
        while True:
            self._wake.wait(STREAM_EVERY)
            with self._lock:
                job = self._job
                if job is None or time.monotonic() - job[3] < STREAM_EVERY:
                    continue
                tenant, jid, output, _ = job
                out, err = output.drain()
                if out or err:
                    try:
                        self._store.append_output(tenant, jid, out, err)
                    except Exception:
                        pass  # live output is best effort; the final output still lands


def _run_in_fresh_process(
    body: Callable[[], JobResult],
    state: StateFile,
    job_fields: dict[str, Any],
    max_runtime: float | None,
) -> JobResult:
    """`_kill_process`: run the job in a forked child whose interpreter is then discarded."""
    import pickle

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            data = pickle.dumps(body())
        except BaseException as exc:
            data = pickle.dumps(JobResult("error", None, f"{exc!r}", "", "", None, 0.0))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        os._exit(0)
    os.close(write_fd)
    state.set_job(
        **job_fields,
        pid=pid,
        started=time.time(),
        max_runtime=None if max_runtime is None else max_runtime * 60.0,
    )
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if data:
        return pickle.loads(data)
    return JobResult(
        "error", None, f"job process exited abnormally (wait status {status})", "", "", None, 0.0
    )
