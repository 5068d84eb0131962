"""The executor: an exec'd process that runs one tenant's jobs and holds nothing else.

With ``isolation = "tenant"``, a pool process does not run user code itself: it hands
each chunk to an executor for the chunk's tenant and compute type (`executors`). The
executor is started with exec, not forked, so none of the worker's memory (the cluster
secret, Redis and S3 credentials, other tenants' keys) is in it. It receives, over its
one socket, the tenant's signing key and the few settings jobs need; it reaches the
store only through that socket, where the pool process answers for that tenant alone
(`TenantScope`), and it cannot write the state file its warden trusts.

Inside, it is an ordinary job process (`process.JobProcess`): the same runner, clean
room, helping and nested ``cloud.*`` calls, so both isolation modes run the same code.
Jobs run on the main thread (signal handlers and alarms need it); the channel's threads
only carry messages.

Run as ``python -m picloud_compat.runner.executor FD [UID]``. Started by root with a
UID, it confines itself before anything else runs: a session of its own (so SIGCONT,
which Linux lets cross users within a session, cannot reach other processes), a mount
namespace whose ``/proc`` shows only its own uid's processes (``hidepid=2``: no other
tenant's command lines), then that uid, without supplementary groups.
"""

from __future__ import annotations

import ctypes
import os
import queue
import resource
import signal
import socket
import sys
from concurrent.futures import Future
from typing import Any

from picloud_compat.errors import CloudException
from picloud_compat.runner.hygiene import ProcessDamaged, own_thread
from picloud_compat.runner.state_file import RunnerIdentity
from picloud_compat.store.records import ChunkRef
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.channel import Channel

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000


class ChannelState:
    """The runner's state reports, sent to the pool process that writes the state file."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def push(self, chunk: str) -> None:
        """A chunk starts."""
        self._channel.notify("state_push", wire.pack([chunk]))

    def pop(self) -> None:
        """The innermost chunk ended."""
        self._channel.notify("state_pop", b"")

    def set_job(
        self, tenant: str, jid: int, token: str, pid: int, started: float, max_runtime: float | None
    ) -> None:
        """A job starts (the pool process checks that `pid` is this executor's)."""
        self._channel.notify(
            "state_job", wire.pack([tenant, jid, token, pid, started, max_runtime])
        )

    def clear_job(self) -> None:
        """The job ended."""
        self._channel.notify("state_clear", b"")

    def close(self) -> None:
        """Nothing to release: the channel closes with the process."""


class Executor:
    """Serves ``start`` and ``run`` from the pool process; runs chunks on the main thread."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[str, bytes, Future[bytes]]] = queue.SimpleQueue()
        self.channel: Channel | None = None
        self._process: Any = None

    def handle(self, method: str, body: bytes) -> bytes:
        """Channel thread: queue the request for the main thread and wait for it."""
        done: Future[bytes] = Future()
        self._work.put((method, body, done))
        return done.result()

    def serve_forever(self) -> None:
        """Main thread: run what the pool process asks until it goes away."""
        assert self.channel is not None
        while not self.channel.closed.is_set():
            try:
                method, body, done = self._work.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                done.set_result(wire.pack([True, self._do(method, wire.unpack(body))]))
            except ProcessDamaged as exc:
                done.set_result(wire.pack([False, "ProcessDamaged", str(exc)]))
            except Exception as exc:
                done.set_result(wire.pack(wire.error_reply(exc)))

    def _do(self, method: str, args: Any) -> Any:
        if method == "start":
            (config,) = args
            self._start(config)
            return os.getpid()
        if method == "run":
            if self._process is None:
                raise CloudException("the executor was not started")
            (chunk,) = args
            if not isinstance(chunk, ChunkRef):
                raise CloudException("run needs a chunk")
            ran = self._process.run(chunk)
            return [ran, [list(f) for f in self._process.failed]]
        raise CloudException(f"unknown executor request {method!r}")

    def _start(self, config: dict[str, Any]) -> None:
        from picloud_compat.client.jobs import Client
        from picloud_compat.client.remote import RemoteMode
        from picloud_compat.runner import helping
        from picloud_compat.runner.process import JobProcess
        from picloud_compat.runner.slots import RemoteCores
        from picloud_compat.serialization import Codec
        from picloud_compat.settings import Settings
        from picloud_compat.signing import Signer
        from picloud_compat.store.remote.client import RemoteStore

        assert self.channel is not None
        tenant = str(config["tenant"])
        key = bytes.fromhex(str(config["tenant_key"]))
        settings = Settings(**config["settings"]).replace(tenant_key=key.hex())
        limit = int(config.get("rlimit_bytes") or 0)
        if limit:  # no cgroup here: an address-space limit is the fallback
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        store = RemoteStore(self.channel)
        mode = RemoteMode(settings, store)
        codec = Codec(Signer.from_tenant_key(key, tenant), settings.max_transmit_data)

        def codec_for(name: str) -> Codec:
            if name != tenant:
                raise CloudException("this executor runs one tenant's jobs only")
            return codec

        def job_client(name: str) -> Client:  # signs with the tenant key in `settings`
            codec_for(name)
            return Client(settings, store, name, mode, owns=False)

        identity = RunnerIdentity(str(config["worker"]), str(config["warden"]), None)
        state = ChannelState(self.channel)
        self._process = JobProcess(
            settings,
            store,
            identity,
            job_client,
            codec_for=codec_for,
            state=state,
            draining=lambda: bool(store.call("draining")),
            cores=RemoteCores(int(config.get("slots") or 0), store.call),
            refusal=str(config["refusal"]) if config.get("refusal") else None,
        )
        helping.set_environment(str(config["env"]) if config.get("env") else None)


def confine(uid: int) -> None:
    """Become `uid` in a session and a /proc view of our own (see the module doc)."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "making mounts private failed")
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"proc", b"/proc", b"proc", flags, b"hidepid=2") != 0:
        raise OSError(ctypes.get_errno(), "mounting /proc with hidepid=2 failed")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _die_with_parent() -> None:
    """The pool process's death (a kill, an OOM, a crash) ends this executor too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(1)


def main(argv: list[str]) -> None:
    """Serve the pool process over the inherited socket until it closes it."""
    if len(argv) > 2:
        confine(int(argv[2]))
    elif os.getsid(0) != os.getpid():  # not confined by `launch` already
        os.setsid()
    _die_with_parent()  # after confining: a change of uid clears the death signal
    executor = Executor()
    sock = socket.socket(fileno=int(argv[1]))
    executor.channel = Channel(sock, executor.handle, handlers=1, start_thread=own_thread)
    executor.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
