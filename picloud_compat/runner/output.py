"""Live output of the running job, and `_kill_process` jobs in a forked child.

Both sit beside `ChunkRunner` rather than in it: they are about one job's process and
streams, not about claiming and recording.
"""

from __future__ import annotations

import os
import pickle
import select
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from picloud_compat.runner.execution import JobOutput, JobResult
from picloud_compat.runner.hygiene import own_thread
from picloud_compat.runner.state_file import JobStateSink
from picloud_compat.store.contract import RunnerStore

STREAM_EVERY = 0.5
"""Seconds between live output uploads of a running job."""
TICK_EVERY = 1.0
"""Seconds between the running job's ticks (`OutputStreamer`: lease renewals)."""
CHILD_EXIT_CHECK = 0.1
"""Seconds between checks that a `_kill_process` child has exited while its pipe is quiet."""


class OutputStreamer:
    """Uploads the running job's output every STREAM_EVERY seconds, from one thread.

    The thread lives as long as the process; jobs shorter than STREAM_EVERY never
    upload anything here (their output travels with the outcome).
    """

    def __init__(self, store: RunnerStore, tick: Callable[[], None] | None = None) -> None:
        """`tick` is called every `TICK_EVERY` seconds while a job runs."""
        self._store = store
        self._tick = tick
        self._ticked = 0.0
        self._lock = threading.Lock()  # held while uploading and while switching jobs
        self._job: tuple[str, int, JobOutput, float] | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, tenant: str, jid: int, output: JobOutput) -> None:
        """Start streaming `output` as job (tenant, jid)."""
        with self._lock:
            self._job = (tenant, jid, output, time.monotonic())
        if self._thread is None or not self._thread.is_alive():
            self._thread = own_thread(
                threading.Thread(target=self._loop, name="picloud-output", daemon=True)
            )

    def current(self) -> tuple[str, int, JobOutput, float] | None:
        """The job streaming now (tenant, jid, output, since), if any."""
        return self._job

    def end(self) -> None:
        """Stop streaming; any upload in flight lands before this returns."""
        with self._lock:
            self._job = None

    def _loop(self) -> None:
        while True:
            self._wake.wait(STREAM_EVERY)
            if self._tick is not None and self._job is not None:
                now = time.monotonic()
                if now - self._ticked >= TICK_EVERY:
                    self._ticked = now
                    self._tick()
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


def run_in_fresh_process(
    body: Callable[[], JobResult],
    state: JobStateSink,
    job_fields: dict[str, Any],
    max_runtime: float | None,
) -> JobResult:
    """`_kill_process`: run the job in a forked child whose interpreter is then discarded."""
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
    try:
        data, status = _read_until_exit(read_fd, pid)
    finally:
        os.close(read_fd)
    problem = f"job process exited abnormally (wait status {status})"
    try:
        if data:
            return cast(JobResult, pickle.loads(data))  # what the child pickled above
    except Exception as exc:  # cut short, or written into by a process the job forked
        problem += f"; its result could not be read: {exc!r}"
    return JobResult("error", None, problem, "", "", None, 0.0)


def _read_until_exit(read_fd: int, pid: int) -> tuple[bytes, int]:
    """What the child wrote, and its wait status. End of file alone cannot end the
    read: a process the job forked and left behind holds the pipe open (until the
    clean room ends it, after this returns), so the child's exit ends it too."""
    os.set_blocking(read_fd, False)
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    chunks: list[bytes] = []
    status: int | None = None
    while True:
        try:
            block = os.read(read_fd, 1 << 20)
        except BlockingIOError:
            block = None
        if block:
            chunks.append(block)
            continue
        if block == b"" or status is not None:  # end of file; or exited and drained
            break
        if not poller.poll(CHILD_EXIT_CHECK * 1000):
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code  # what it wrote is in the pipe: drained on the next turn
    if status is None:
        _, status = os.waitpid(pid, 0)
    return b"".join(chunks), status
