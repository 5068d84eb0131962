"""Memory limits per job: a cgroup (v1 memory controller) per executor.

A compute type means a memory limit (c1 300 MB, c2 800 MB, ...). Each executor runs in
its own cgroup under ``/sys/fs/cgroup/memory/picloud/``, with swap capped too, so a job
(and every process it starts) that exceeds the limit is killed by the kernel without
touching its neighbours. The pool process reads the cgroup to report a job's peak
memory and to tell an out-of-memory kill from any other death. Where cgroups cannot be
used (not root, no memory controller), the executor limits its own address space
instead and a job over it gets a MemoryError.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("picloud.limits")

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def cgroups_usable() -> bool:
    """Whether this process can make memory cgroups (root, v1 memory controller)."""
    return os.geteuid() == 0 and (CGROUP_ROOT / "memory.limit_in_bytes").exists()


def remove_stale(host: str, alive: Callable[[int], bool]) -> int:
    """Remove the cgroups of this host's pool processes that died without cleaning up
    (named ``<host>-<pid>-<n>``); a cgroup still holding processes is left alone by
    the kernel. Returns how many were removed."""
    removed = 0
    parent = CGROUP_ROOT / "picloud"
    if not parent.is_dir():
        return 0
    for path in parent.glob(f"{host}-*-*"):
        pid = path.name[len(host) + 1 :].split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(OSError):
                path.rmdir()
                removed += 1
    return removed


class MemoryCgroup:
    """One executor's memory cgroup."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.path = CGROUP_ROOT / "picloud" / name
        self.path.mkdir(parents=True, exist_ok=True)
        self._write("memory.limit_in_bytes", limit_bytes)
        with contextlib.suppress(OSError):  # no swap accounting: the limit still holds
            self._write("memory.memsw.limit_in_bytes", limit_bytes)
        self._kills = self.oom_kills()
        # Kept open: a job's start and end touch these, and reopening costs 25 us each.
        self._peak_fd = os.open(self.path / "memory.max_usage_in_bytes", os.O_RDWR)
        self._hits_fd = os.open(self.path / "memory.failcnt", os.O_RDWR)

    def add(self, pid: int) -> None:
        """Move `pid` (before it runs any job) into the cgroup."""
        self._write("cgroup.procs", pid)

    def reset_peak(self) -> None:
        """A job starts: its peak and limit hits are counted from now."""
        with contextlib.suppress(OSError):
            os.write(self._peak_fd, b"0")
            os.write(self._hits_fd, b"0")

    def peak(self) -> tuple[int, int]:
        """(peak bytes, times the limit was hit) since the last `reset_peak`."""
        try:
            return int(os.pread(self._peak_fd, 32, 0)), int(os.pread(self._hits_fd, 32, 0))
        except (OSError, ValueError):
            return 0, 0

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for exceeding the limit."""
        try:
            for line in (self.path / "memory.oom_control").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def killed_for_memory(self) -> bool:
        """Whether a process was killed for memory since the last call."""
        kills = self.oom_kills()
        killed, self._kills = kills > self._kills, kills
        return killed

    def remove(self) -> None:
        """Delete the cgroup (its processes are gone)."""
        for fd in (self._peak_fd, self._hits_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def _write(self, name: str, value: int) -> None:
        (self.path / name).write_text(str(value))
