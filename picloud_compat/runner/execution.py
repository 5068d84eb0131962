"""Running one job: the single code path for Celery workers, the simulator and cloud.mp.

`run_job` applies the job's environment variables, captures its stdout/stderr (live,
through `JobOutput`), optionally profiles it, calls the function, and seals the
return value. It never raises for anything the job does: failures come back as an
``error`` outcome carrying the remote traceback text that `CloudException` shows.
"""

from __future__ import annotations

import contextvars
import cProfile
import io
import os
import pstats
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from picloud_compat.errors import CloudPicklingError
from picloud_compat.jobspec import JobSpec
from picloud_compat.serialization import Codec

Loaded = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""What loading a job gives: the function, its positional and keyword arguments."""


@dataclass(frozen=True)
class JobContext:
    """Who is running: lets a job's own `cloud.call` act as the same tenant."""

    tenant: str
    jid: int


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "picloud_job", default=None
)


def current_job() -> JobContext | None:
    """The job running in this thread's context, None outside jobs."""
    return _current.get()


@dataclass
class JobResult:
    """What one run produced, before it becomes an `Outcome` for the store."""

    status: str  # done | error
    result: bytes | None
    exception: str | None
    stdout: str
    stderr: str
    profile: str | None
    runtime: float
    cpu_user: float = 0.0  # seconds, the job and the children it waited for
    cpu_system: float = 0.0


class JobStream(io.TextIOBase):
    """A text stream that collects what a job prints, keeping only a bounded tail."""

    def __init__(self, limit: int, fallback: TextIO | None) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._fallback = fallback

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    def write(self, text: str) -> int:
        """Collect `text`, keeping at most twice the limit before trimming."""
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._parts.append(text)
            self._size += len(text)
            if self._size > 2 * self._limit:
                joined = "".join(self._parts)[-self._limit :]
                self._parts, self._size = [joined], len(joined)
        return len(text)

    def drain(self) -> str:
        """Everything written since the last drain (the live-streaming unit)."""
        with self._lock:
            text = "".join(self._parts)
            self._parts, self._size = [], 0
        return text[-self._limit :]

    @property
    def encoding(self) -> str:  # type: ignore[override]  # an attribute in TextIOBase's stub
        """Always UTF-8 (what the captured text is stored as)."""
        return "utf-8"

    def isatty(self) -> bool:
        """Never: output is captured."""
        return False

    def fileno(self) -> int:
        """The real descriptor, for code that hands sys.stdout to a subprocess."""
        # Code that hands sys.stdout to a subprocess gets the real descriptor.
        if self._fallback is not None:
            return self._fallback.fileno()
        raise io.UnsupportedOperation("fileno")


class JobOutput:
    """The stdout/stderr pair of the job currently running in this process."""

    def __init__(self, limit: int) -> None:
        self.stdout = JobStream(limit, sys.__stdout__)
        self.stderr = JobStream(limit, sys.__stderr__)

    def drain(self) -> tuple[str, str]:
        """(stdout, stderr) written since the last drain."""
        return self.stdout.drain(), self.stderr.drain()


def _set_environment(env: Mapping[str, str]) -> dict[str, str | None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return saved


def _restore_environment(saved: Mapping[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_job(
    context: JobContext,
    load: Callable[[], Loaded],
    spec: JobSpec,
    codec: Codec,
    output: JobOutput,
) -> JobResult:
    """Run one job to completion and seal its result; never raises for job failures.

    `load` unpickles the function and arguments *inside* the captured, timed region,
    so an import error in the user's code is reported as the job's error.
    """
    profiler = cProfile.Profile() if spec.profile else None
    env = dict(spec.os_env_vars)
    saved_env = _set_environment(env) if env else None
    saved_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = output.stdout, output.stderr
    token = _current.set(context)
    times = os.times()  # one system call: CPU time of this process and reaped children
    start = time.perf_counter()
    result = exception = None
    status = "done"
    try:  # plain try/finally, not context managers: this runs for every tiny job
        try:
            func, args, kwargs = load()
            if profiler is not None:
                value = profiler.runcall(func, *args, **kwargs)
            else:
                value = func(*args, **kwargs)
        except BaseException as exc:  # the job's failure, whatever it is
            status, exception = "error", _remote_traceback(exc)
        else:
            try:
                result = codec.result(value, spec.fast_serialization)
            except CloudPicklingError as exc:
                status = "error"
                exception = f"could not serialize result: {exc.parameter}"
            except Exception as exc:
                status, exception = "error", f"could not serialize result: {exc}"
    finally:
        _current.reset(token)
        sys.stdout, sys.stderr = saved_streams
        if saved_env is not None:
            _restore_environment(saved_env)
    runtime = time.perf_counter() - start
    after = os.times()
    cpu_user = after.user - times.user + after.children_user - times.children_user
    cpu_system = after.system - times.system + after.children_system - times.children_system
    stdout, stderr = output.drain()
    return JobResult(
        status,
        result,
        exception,
        stdout,
        stderr,
        _profile_text(profiler),
        runtime,
        cpu_user,
        cpu_system,
    )


def _remote_traceback(exc: BaseException) -> str:
    """The traceback from the user's code down (our own frames trimmed)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return "".join(lines).rstrip()


def _profile_text(profiler: cProfile.Profile | None) -> str | None:
    if profiler is None:
        return None
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(40)
    return buf.getvalue()
