"""Every job starts clean: what one job leaves in its process is undone before the next.

A job process runs job after job, of any tenant (a Celery pool process, a simulator
process). `CleanRoom` notes the process's baseline before its first job and, around
every outermost job:

- captures what the job writes to file descriptors 1 and 2 (subprocesses, C code,
  ``os.write``) in two unlinked files of its own, returned as the job's output
  (the tail, capped like the rest of its output), instead of the worker's log;
- ends child processes the job left behind (this process is a child subreaper, so
  grandchildren that daemonized are found too);
- cancels alarms and interval timers and restores signal handlers (``signal.signal``,
  ``alarm`` and ``setitimer`` are wrapped, so only what a job set is undone), the signal
  mask and the wakeup fd;
- restores resource limits a job changed (``resource.setrlimit`` and ``prlimit`` are
  wrapped the same way): a lowered ``RLIMIT_NOFILE`` or ``RLIMIT_AS`` would fail the
  next tenant's job; a hard limit the process may not raise again is damage;
- restores the working directory, ``os.environ``, ``sys.path``, the recursion limit,
  ``sys.stdin``/``stdout``/``stderr`` and file descriptors 0-2;
- reports damage it cannot undo (threads the job left running, a closed real stdout).
  The runner then records its outcomes, gives back the rest of its chunk and raises
  `ProcessDamaged`, so the process is replaced before it runs another job.

Everything here is a handful of system calls per job when the job left nothing behind.

This is hygiene against careless jobs, not a sandbox: code running in the process can
bypass any of it (``_signal``, ``putenv``, ``sys.settrace``, patching this module). Jobs
that must not see each other need processes of their own.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
THREAD_SHOW_UP = 0.005
"""Seconds a thread the kernel counts is given to start running Python code."""
REAP_TIMEOUT = 5.0
"""Seconds spent killing and reaping a job's leftover processes at most."""
_TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
RECYCLE_EXIT = 75
"""Exit status of a job process that leaves to be replaced after a job damaged it."""


class ProcessDamaged(Exception):
    """A job left this process in a state that cannot be undone; replace the process."""


def own_thread(thread: threading.Thread) -> threading.Thread:
    """Start a platform thread (not a job's); known by identity, it never counts as a
    leftover of the job during which it started."""
    thread.start()
    if thread.ident is not None:
        _OWN_THREADS.add(thread.ident)
    return thread


_OWN_THREADS: set[int] = set()


@dataclass
class Leftovers:
    """What one job left: its fd-level output, and damage that cannot be undone."""

    stdout: str = ""
    stderr: str = ""
    damage: list[str] = field(default_factory=list)


NOTHING_LEFT = Leftovers()
"""What most jobs leave (shared: never mutated)."""


class CleanRoom:
    """The baseline of one job process, and the undoing of each job's traces."""

    def __init__(self, output_limit: int) -> None:
        self._limit = output_limit
        self._cwd = os.getcwd()
        self._environ = dict(os.environ)
        self._environ_raw = dict(_raw_environ())
        self._path = list(sys.path)
        self._recursion = sys.getrecursionlimit()
        self._stdio = (sys.stdin, sys.stdout, sys.stderr)
        # the real streams open now (a Celery pool process starts with stdin closed)
        self._open_streams = [
            name
            for name in ("__stdin__", "__stdout__", "__stderr__")
            if getattr(sys, name) is not None and not getattr(sys, name).closed
        ]
        self._threads: set[int] = set(sys._current_frames())
        try:
            self._task_dir: int | None = os.open(
                f"/proc/{os.getpid()}/task", os.O_RDONLY | os.O_DIRECTORY
            )
        except OSError:  # no procfs: Python-visible threads only
            self._task_dir = None
        self._known_kernel = self._kernel_threads()
        self._handlers: dict[int, Any] = {}
        for signum in signal.valid_signals():
            try:
                self._handlers[signum] = signal.getsignal(signum)
            except (OSError, ValueError):
                continue
        self._changed_handlers = _track_handler_changes()
        self._changed_limits = _track_limit_changes()
        self._limits = {res: resource.getrlimit(res) for res in _RESOURCES}
        self._sigmask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self._wakeup_fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(self._wakeup_fd)
        self._saved_fds = (os.dup(1), os.dup(2))
        self._captures = (_capture_file("stdout"), _capture_file("stderr"))
        _become_subreaper()

    def enter(self) -> None:
        """A job starts: its fd 1 and 2 go to the capture files."""
        os.dup2(self._captures[0], 1)
        os.dup2(self._captures[1], 2)

    def leave(self) -> Leftovers:
        """The job ended: collect its fd-level output and undo what it left.

        Never raises: whatever cannot be undone (the job broke the room itself) is
        damage, and the process is replaced."""
        try:
            return self._leave()
        except Exception as exc:
            return Leftovers(damage=[f"cleaning up after the job failed: {exc!r}"])

    def _leave(self) -> Leftovers:
        _end_children()  # first: a leftover child writes into the capture until it dies
        _flush_real_streams()
        os.dup2(self._saved_fds[0], 1)
        os.dup2(self._saved_fds[1], 2)
        stdout, stderr = self._drain(self._captures[0]), self._drain(self._captures[1])
        if _timers_touched:
            _timers_touched.clear()
            _ORIGINAL_ALARM(0)
            for timer in _TIMERS:
                if signal.getitimer(timer) != (0.0, 0.0):
                    _ORIGINAL_SETITIMER(timer, 0)
        if self._changed_handlers:
            self._restore_handlers()
        signal.pthread_sigmask(signal.SIG_SETMASK, self._sigmask)
        signal.set_wakeup_fd(self._wakeup_fd)
        self._restore_process_state()
        damage = self._restore_limits() if self._changed_limits else []
        damage += self._damage()
        if not (stdout or stderr or damage):
            return NOTHING_LEFT
        return Leftovers(stdout, stderr, damage)

    def _drain(self, fd: int) -> str:
        size = os.fstat(fd).st_size
        if not size:
            return ""
        keep = min(size, self._limit)
        data = os.pread(fd, keep, size - keep)
        os.ftruncate(fd, 0)  # O_APPEND: the next job writes from the start again
        return data.decode("utf-8", "replace")

    def _restore_handlers(self) -> None:
        while self._changed_handlers:
            signum = self._changed_handlers.pop()
            if signum in self._handlers:
                _ORIGINAL_SIGNAL(signum, self._handlers[signum])

    def _restore_limits(self) -> list[str]:
        damage = []
        while self._changed_limits:
            res = self._changed_limits.pop()
            baseline = self._limits.get(res)
            if baseline is None or resource.getrlimit(res) == baseline:
                continue
            try:
                _ORIGINAL_SETRLIMIT(res, baseline)
            except (OSError, ValueError) as exc:  # a lowered hard limit, without privilege
                damage.append(f"the job changed {_RESOURCES.get(res, res)} for good: {exc}")
        return damage

    def _restore_process_state(self) -> None:
        try:
            moved = os.getcwd() != self._cwd  # also catches os.fchdir
        except OSError:  # the job removed the directory it was in
            moved = True
        if moved:
            os.chdir(self._cwd)
        if _raw_environ() != self._environ_raw:
            os.environ.clear()
            os.environ.update(self._environ)
        if sys.path != self._path:
            sys.path[:] = self._path
        if sys.getrecursionlimit() != self._recursion:
            sys.setrecursionlimit(self._recursion)
        if (sys.stdin, sys.stdout, sys.stderr) != self._stdio:
            sys.stdin, sys.stdout, sys.stderr = self._stdio

    def _damage(self) -> list[str]:
        damage = []
        leftovers = self._leftover_threads()
        if leftovers:
            damage.append(f"the job left threads running: {', '.join(sorted(leftovers))}")
        for name in self._open_streams:
            if getattr(sys, name).closed:
                damage.append(f"the job closed sys.{name}")
        return damage

    def _leftover_threads(self) -> list[str]:
        """Python threads the job started and left running.

        The kernel's thread count (one fstat) says whether any thread appeared; a thread
        started just before the job returned may not run Python yet (no frame), so it
        is given a moment to show. Threads that never show are C-level pools (OpenBLAS
        and the like): harmless, and accepted as part of the process from then on."""
        kernel = self._kernel_threads()
        running = sys._current_frames()
        if kernel <= self._known_kernel and running.keys() <= self._threads:
            self._known_kernel = kernel  # threads may have ended
            return []
        deadline = time.monotonic() + THREAD_SHOW_UP
        while True:
            leftovers = self._new_python_threads(running)
            if leftovers or kernel < 0 or time.monotonic() > deadline:
                break
            time.sleep(0.0002)
            running = sys._current_frames()
        self._known_kernel = kernel
        return leftovers

    def _new_python_threads(self, running: dict[int, Any]) -> list[str]:
        names = {t.ident: t.name for t in threading.enumerate()}
        leftovers = []
        for ident in running:
            if ident in self._threads:
                continue
            if ident in _OWN_THREADS:
                self._threads.add(ident)  # the platform's: part of the baseline now
            else:
                leftovers.append(names.get(ident, f"thread {ident}"))
        return leftovers

    def _kernel_threads(self) -> int:
        """Threads of this process as the kernel counts them (-1 where unknown)."""
        if self._task_dir is None:
            return -1
        return os.fstat(self._task_dir).st_nlink - 2  # procfs: threads + "." and ".."


def _raw_environ() -> dict[bytes, bytes]:
    """os.environ's own bytes dict: comparing it costs a microsecond, where comparing
    os.environ itself decodes every variable (tens of microseconds per job)."""
    raw: dict[bytes, bytes] = getattr(os.environ, "_data", None) or {
        k.encode(): v.encode() for k, v in os.environ.items()
    }
    return raw


def _capture_file(name: str) -> int:
    """An unlinked file opened for append: what a job writes to fd 1 or 2 lands here.

    O_APPEND makes writes follow the truncation after each job (a dup2'd descriptor
    shares the file offset, which truncating would not reset)."""
    directory = tempfile.mkdtemp(prefix="picloud-capture-")
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    os.unlink(path)
    os.rmdir(directory)
    return fd


def _flush_real_streams() -> None:
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None and not stream.closed:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _end_children() -> None:
    """Kill every descendant of this process (a job's leftovers) and reap them."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return  # no children at all: the common case, one system call
    deadline = time.monotonic() + REAP_TIMEOUT
    while time.monotonic() < deadline:
        kill_descendants(os.getpid())
        try:
            while os.waitpid(-1, os.WNOHANG) != (0, 0):
                pass
        except ChildProcessError:
            return  # all reaped
        time.sleep(0.005)


def kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of `pid` (a job's process tree; the warden's too)."""
    import psutil  # only when there is something to kill

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


def _become_subreaper() -> None:
    """Orphaned descendants of a job are re-parented to this process, not to init,
    so `_end_children` finds daemonized grandchildren too (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_ORIGINAL_SIGNAL: Callable[..., Any] = signal.signal
_ORIGINAL_ALARM: Callable[[int], int] = signal.alarm
_ORIGINAL_SETITIMER: Callable[..., Any] = signal.setitimer
_ORIGINAL_SETRLIMIT: Callable[..., None] = resource.setrlimit
_ORIGINAL_PRLIMIT: Callable[..., Any] = resource.prlimit
_RESOURCES: dict[int, str] = {
    getattr(resource, name): name for name in dir(resource) if name.startswith("RLIMIT_")
}
_changed: set[int] = set()
_timers_touched: set[bool] = set()
_changed_limits: set[int] = set()


def _track_handler_changes() -> set[int]:
    """Wrap `signal.signal`, `alarm` and `setitimer` once, so what a job sets is known
    and undone, without reading every handler and timer after every job."""
    if signal.signal is not _tracking_signal:
        signal.signal = _tracking_signal  # type: ignore[assignment]  # same call signature
        signal.alarm = _tracking_alarm
        signal.setitimer = _tracking_setitimer
    return _changed


def _tracking_signal(signum: int, handler: Any) -> Any:
    _changed.add(int(signum))
    return _ORIGINAL_SIGNAL(signum, handler)


def _tracking_alarm(seconds: int) -> int:
    _timers_touched.add(True)
    return _ORIGINAL_ALARM(seconds)


def _tracking_setitimer(which: int, seconds: float, interval: float = 0.0) -> Any:
    _timers_touched.add(True)
    return _ORIGINAL_SETITIMER(which, seconds, interval)


def _track_limit_changes() -> set[int]:
    """Wrap `resource.setrlimit` and `prlimit` once: only the limits a job set are
    read and restored after it."""
    if resource.setrlimit is not _tracking_setrlimit:
        resource.setrlimit = _tracking_setrlimit
        resource.prlimit = _tracking_prlimit
    return _changed_limits


def _tracking_setrlimit(res: int, limits: tuple[int, int]) -> None:
    _changed_limits.add(int(res))
    _ORIGINAL_SETRLIMIT(res, limits)


def _tracking_prlimit(pid: int, res: int, *limits: tuple[int, int]) -> Any:
    # any thread id of this process names the process too (limits are per process)
    if limits and (pid in (0, os.getpid()) or os.path.exists(f"/proc/self/task/{pid}")):
        _changed_limits.add(int(res))
    return _ORIGINAL_PRLIMIT(pid, res, *limits)
