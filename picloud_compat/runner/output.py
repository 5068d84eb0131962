"""Live output of the running job, and `_kill_process` jobs in a forked child.

Both sit beside `ChunkRunner` rather than in it: they are about one job's process and
streams, not about claiming and recording.
"""

from __future__ import annotations

import os
import pickle
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


class OutputStreamer:
    """Uploads the running job's output every STREAM_EVERY seconds, from one thread.

    The thread lives as long as the process; jobs shorter than STREAM_EVERY never
    upload anything here (their output travels with the outcome).
    """

    def __init__(self, store: RunnerStore) -> None:
        self._store = store
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
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if data:
        return cast(JobResult, pickle.loads(data))  # what the child pickled above
    return JobResult(
        "error", None, f"job process exited abnormally (wait status {status})", "", "", None, 0.0
    )
