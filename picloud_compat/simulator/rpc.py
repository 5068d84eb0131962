"""A small RPC link between the simulator's processes and its job store.

Simulator worker processes (and jobs that call ``cloud`` inside them) reach the parent's
`MemoryJobStore` through `RemoteStore`, which forwards method calls over an
authenticated `multiprocessing.connection` (HMAC challenge with a random key), one
connection per thread so blocking calls (waiting for work or notices) never hold up
another thread.
"""

from __future__ import annotations

import logging
import os
import threading
from multiprocessing.connection import Client as connect
from multiprocessing.connection import Connection, Listener
from typing import Any

from picloud_compat.store.remote.scope import RUNNER_METHODS, TENANT_METHODS

log = logging.getLogger("picloud.simulator")

EXPOSED = TENANT_METHODS | RUNNER_METHODS | {"concurrency", "service", "next_chunk"}
"""Store methods simulator processes may call: the same tenant and runner calls a
remote store serves, plus the simulator's own scheduling."""
"""What job processes may ask of the parent's store: their own roles (runner, client,
records), never supervision or accounts."""


class StoreServer:
    """Serves `target`'s exposed methods to authenticated local processes."""

    def __init__(self, target: Any, address: str, authkey: bytes) -> None:
        self.target = target
        self.listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="picloud-sim-rpc", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn = self.listener.accept()
            except Exception:
                if self._stopping:
                    return
                log.debug("rejected a simulator connection", exc_info=True)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    method, args, kwargs = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    if method not in EXPOSED:
                        raise AttributeError(f"simulator store has no method {method!r}")
                    reply = ("ok", getattr(self.target, method)(*args, **kwargs))
                except BaseException as exc:
                    reply = ("err", exc)
                try:
                    conn.send(reply)
                except (EOFError, OSError):
                    return

    def close(self) -> None:
        """Stop accepting connections (connections already open run until closed)."""
        self._stopping = True
        try:
            self.listener.close()
        except OSError:
            pass


class RemoteStore:
    """The `JobStore` contract, forwarded to the simulator's parent process."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._address = address
        self._authkey = authkey
        self._local = threading.local()
        # A forked child (a `_kill_process` job) must not share its parent's socket.
        os.register_at_fork(after_in_child=self._forget_connections)

    def _forget_connections(self) -> None:
        self._local = threading.local()

    def _conn(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(
                self._address, family="AF_UNIX", authkey=self._authkey
            )
        return conn

    def __getattr__(self, method: str) -> Any:
        if method not in EXPOSED:
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            if method == "submit":  # sealed arguments may be views: pickle needs bytes
                sub = args[1]
                sub.args = [bytes(a) for a in sub.args]
            try:
                conn = self._conn()
                conn.send((method, args, kwargs))
                status, value = conn.recv()
            except (EOFError, BrokenPipeError, ConnectionResetError):
                # The simulator that owns this process is gone (the script ended): its
                # store and waiters with it. Nothing left to do or report: leave quietly.
                # (Other errors, such as a job's own alarm raising mid-call, propagate.)
                os._exit(0)
            if status == "err":
                raise value
            return value

        return call

    def close(self) -> None:
        """Close this thread's connection; the next call reconnects."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
