"""A worker's cores, shared by its job processes: what ``_cores=N`` holds.

A worker of concurrency N has N slots, one lock file each in its state directory. A
job process holds one slot while it runs a chunk (taken once per chunk, so 1-core jobs
cost nothing more), and a job with ``_cores=k`` widens that to k slots before it starts
and narrows back to one when it ends. The other processes then find no free slot when
their next chunk starts and wait: two ``_cores=2`` jobs on a 2-slot worker run one
after the other, as PiCloud's did.

Slots are ``flock`` locks, so the kernel releases them when a process dies: a killed or
crashed job never leaks a core. Widening is all-or-nothing behind an exclusive *gate*
(chunk starts pass it shared), which is what keeps two widening jobs from each holding
one slot and waiting for the other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

GATE = "slots.gate"
_SLOT_PREFIX = "slot."
POLL = 0.005
"""Seconds between looks for a free slot (a slot frees when a job or chunk ends)."""


class Cores(Protocol):
    """What a runner asks of its worker's slots."""

    @property
    def count(self) -> int:
        """Slots of the worker (0: unknown, nothing is held or waited for)."""
        ...

    def enter_chunk(self) -> None:
        """A chunk starts in this process: hold one slot."""
        ...

    def leave_chunk(self) -> None:
        """The chunk ended: hold none."""
        ...

    def widen(self, cores: int) -> None:
        """Hold `cores` slots (this process's one among them); waits until they free."""
        ...

    def narrow(self) -> None:
        """Back to the one slot of a running chunk."""
        ...


@contextlib.contextmanager
def holding(cores: Cores, wanted: int) -> Iterator[bool]:
    """Hold `wanted` slots while the block runs; yields False (holding nothing more) when
    the worker has fewer, so the job can fail saying so instead of waiting forever."""
    if wanted <= 1:
        yield True
        return
    if 0 < cores.count < wanted:
        yield False
        return
    cores.widen(wanted)
    try:
        yield True
    finally:
        cores.narrow()


def prepare(directory: Path, count: int) -> None:
    """Make the worker's `count` slot files (at worker start, before any job process)."""
    for index in range(count):
        (directory / f"{_SLOT_PREFIX}{index}").touch(mode=0o600)
    (directory / GATE).touch(mode=0o600)


class SlotLedger:
    """This process's view of the slots in `directory` (no files: `count` is 0)."""

    def __init__(self, directory: Path | None) -> None:
        self._fds: list[int] = []
        self._gate = -1
        if directory is not None and (directory / GATE).exists():
            paths = sorted(
                directory.glob(f"{_SLOT_PREFIX}*"), key=lambda p: int(p.name.split(".")[1])
            )
            self._fds = [os.open(p, os.O_RDWR | os.O_CLOEXEC) for p in paths]
            self._gate = os.open(directory / GATE, os.O_RDWR | os.O_CLOEXEC)
        self._held: list[int] = []  # indexes of the slots this process holds
        # an executor's requests arrive on its channel's threads, beside the main thread
        self._lock = threading.RLock()

    @property
    def count(self) -> int:
        """Slots of the worker."""
        return len(self._fds)

    @property
    def held(self) -> int:
        """Slots this process holds now."""
        return len(self._held)

    def enter_chunk(self) -> None:
        """Take one slot for a chunk about to run (waits while wide jobs hold them all)."""
        with self._lock:
            if not self._fds or self._held:
                return
            with self._gated(fcntl.LOCK_SH):
                self._take(1)

    def leave_chunk(self) -> None:
        """The chunk ended: free every slot this process holds."""
        with self._lock:
            self._release(len(self._held))

    def widen(self, cores: int) -> None:
        """Hold `cores` slots; ValueError if the worker has fewer."""
        with self._lock:
            if not self._fds or cores <= max(1, len(self._held)):
                return
            if cores > len(self._fds):
                raise ValueError(f"needs {cores} cores; this worker has {len(self._fds)}")
            self._release(len(self._held))  # never hold one while waiting for others
            with self._gated(fcntl.LOCK_EX):
                self._take(cores)

    def narrow(self) -> None:
        """Keep one slot (the chunk's) and free the rest."""
        with self._lock:
            self._release(max(0, len(self._held) - 1))

    def close(self) -> None:
        """Free everything and close the files."""
        self._release(len(self._held))
        for fd in [*self._fds, self._gate]:
            if fd >= 0:
                os.close(fd)
        self._fds, self._gate = [], -1

    @contextlib.contextmanager
    def _gated(self, mode: int) -> Iterator[None]:
        fcntl.flock(self._gate, mode)
        try:
            yield
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)

    def _take(self, wanted: int) -> None:
        while len(self._held) < wanted:
            for index, fd in enumerate(self._fds):
                if index in self._held:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held.append(index)
                if len(self._held) == wanted:
                    return
            time.sleep(POLL)

    def _release(self, how_many: int) -> None:
        for _ in range(how_many):
            fcntl.flock(self._fds[self._held.pop()], fcntl.LOCK_UN)


class RemoteCores:
    """An executor's slots: it cannot open the worker's files, so its pool process holds
    them for it (the chunk's slot around the whole chunk, the rest when asked)."""

    def __init__(self, count: int, call: Callable[..., object]) -> None:
        self._count = count
        self._call = call

    @property
    def count(self) -> int:
        """Slots of the worker."""
        return self._count

    def enter_chunk(self) -> None:
        """Held by the pool process."""

    def leave_chunk(self) -> None:
        """Freed by the pool process."""

    def widen(self, cores: int) -> None:
        """Ask the pool process for `cores` slots (it waits for them)."""
        self._call("cores_widen", cores)

    def narrow(self) -> None:
        """Give back all but the chunk's slot."""
        self._call("cores_narrow")
