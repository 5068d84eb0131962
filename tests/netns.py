"""Hosts for the tests: Linux network namespaces on one private bridge (needs root).

Nothing touches the root namespace's interfaces. A dedicated namespace holds the
bridge; every host is a namespace of its own with one veth port on that bridge
(10.213.7.0/24) and, for what it runs, its own hostname (a UTS namespace), because the
platform names job processes ``host:pid``. Processes are started on a host with
``ip netns exec``, which execs in place, so each is stopped by its own pid. A host is
crashed, cut off and healed by acting on its port in the bridge's namespace, so the
host itself is told nothing: a partition drops its packets silently, as a failed switch
does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from bench.netns import BRIDGE, Bridge, ip
from tests.harness import Worker, wait_for

SUBNET = "10.213.7"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Host:
    ns: str  # the network namespace's name (/run/netns/NAME)
    hostname: str
    address: str
    port: str  # its veth's end on the bridge, in the bridge's namespace

    def prefix(self) -> list[str]:
        """Run a command on this host: its network and its own hostname. Each step
        execs the next, so the pid Popen returns is the command's own."""
        return [
            *("ip", "netns", "exec", self.ns, "unshare", "--uts"),
            *("sh", "-c", 'hostname "$0" && exec "$@"', self.hostname),
        ]

    @property
    def inode(self) -> int:
        """What ``os.stat('/proc/self/ns/net').st_ino`` says in a process on this host."""
        return os.stat(f"/run/netns/{self.ns}").st_ino

    def pids(self) -> list[int]:
        """Every process on this host."""
        return [int(p) for p in ip("netns", "pids", self.ns).split()]


class Network:
    """A bridge and the hosts plugged into it; `close` removes them all."""

    def __init__(self) -> None:
        self._bridge = Bridge(f"pc{os.getpid()}-{secrets.token_hex(2)}")  # unique per test
        self.tag = self._bridge.tag
        self.bridge_ns = self._bridge.bridge_ns
        self.hosts: dict[str, Host] = {}
        self.cut_off: set[str] = set()

    def create(self) -> None:
        self._bridge.create()

    def add_host(self, name: str, number: int) -> Host:
        host = Host(f"{self.tag}-{name}", name, f"{SUBNET}.{number}", f"v-{name}"[:15])
        self._bridge.plug(host.ns, host.port, host.address)
        self.hosts[name] = host
        return host

    def partition(self, host: Host) -> None:
        """Take the host's port off the bridge: its packets, and those to it, vanish."""
        ip("-n", self.bridge_ns, "link", "set", host.port, "nomaster")
        self.cut_off.add(host.hostname)

    def heal(self, host: Host) -> None:
        ip("-n", self.bridge_ns, "link", "set", host.port, "master", BRIDGE)
        self.cut_off.discard(host.hostname)

    def heal_all(self) -> None:
        """End every partition (so that workers can shut down cleanly)."""
        for name in list(self.cut_off):
            self.heal(self.hosts[name])

    def crash(self, host: Host) -> list[int]:
        """The host dies: its cable goes first (so its sockets close without a word to
        anyone, as when a machine loses power), then every process on it is SIGKILLed.
        Returns their pids."""
        ip("-n", self.bridge_ns, "link", "del", host.port)
        return kill_all(host)

    def close(self) -> None:
        """Kill what still runs in the namespaces (by pid), then delete them."""
        self._bridge.close()


def kill_all(host: Host) -> list[int]:
    """SIGKILL every process on `host` until none is left; returns their pids."""
    killed: list[int] = []
    deadline = time.monotonic() + 10
    while pids := [p for p in host.pids() if alive(p)]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes left on {host.hostname}: {pids}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)
    return killed


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(host: Host) -> Iterator[None]:
    """Put the calling thread (and the threads and processes it starts) on `host`'s
    network, so the test process itself is a machine on the bridge; back after."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(f"/run/netns/{host.ns}", os.O_RDONLY)
        try:
            _setns(there)
        finally:
            os.close(there)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


class HostRedis:
    """redis-server on a host, listening on that host's address only."""

    def __init__(self, host: Host, directory: Path, port: int = 6379) -> None:
        self.host, self.dir, self.port = host, directory, port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host.address}:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers (the caller must be on the network)."""
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.host.prefix(),
                    *("redis-server", "--bind", self.host.address, "--port", str(self.port)),
                    *("--protected-mode", "no", "--save", "", "--appendonly", "no"),
                    *("--dir", str(self.dir), "--maxmemory-policy", "noeviction"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = redis.from_url(self.url, socket_timeout=2)

        def answers() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("redis-server exited early; see redis.log")
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, 20, f"redis-server on {self.host.hostname}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def host_worker(
    host: Host,
    redis_url: str,
    signing_key: str,
    cwd: Path,
    queues: str = "c1",
    env: dict[str, str] | None = None,
) -> Worker:
    """A Celery worker (not started yet) on `host`, named after it."""
    return Worker(
        redis_url,
        signing_key,
        cwd,
        queues=queues,
        name=host.hostname,
        env=env,
        prefix=host.prefix(),
    )


def stop_workers(workers: list[Worker]) -> None:
    """SIGTERM every live worker at once, then wait; SIGKILL what lingers, and remove
    the state directories of those that had no chance to."""
    pids = [w.pid for w in workers if w.proc is not None]
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    try:
        for w in workers:
            w.stop()
    finally:
        for pid in pids:
            forget_state_dirs(pid)


def forget_state_dirs(pid: int) -> None:
    """Remove what worker `pid` keeps in the temporary directory (it removes it itself
    when it shuts down, not when it is killed)."""
    for leftover in Path(tempfile.gettempdir()).glob(f"picloud-worker-{pid}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
