"""A pool process's watch on the wake-up lists of the compute types its worker serves.

Every published chunk pushes a token onto its type's wake-up list (``offer`` in
``lua/lib.lua``). A process that waits for fresh work sends one BLPOP on those lists
(and on a cancel list of its own), on a connection of its own, and waits on that socket.
Redis times blocked pops out only at its 100 ms clock, so short waits are timed here:
when one ends without a token, the process pushes onto its cancel list, which ends its
pop at once. A pop left outstanding would take the next token while its process is busy
elsewhere, and the process waiting now would not hear of the work. A token is only a
hint: the claims decide.

Used by the linger after stealing (`runner.stealing`) and the opt-in fast start
(`runner.fast_start`). Should the connection fail, waits return at once for a while.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Sequence
from typing import Any

from picloud_compat.settings import Settings
from picloud_compat.store import keys

log = logging.getLogger("picloud.runner")

BLPOP_SECONDS = 30
"""A blocking pop outstanding this long is renewed (so a dead connection is noticed)."""
RETRY_AFTER = 5.0
"""Seconds without wake-ups after the connection failed."""


class WakeUps:
    """One process's wake-up connection."""

    def __init__(self, settings: Settings, served: Sequence[str], name: str) -> None:
        """`name`: this process's worker name (``host:pid``), naming its cancel list."""
        from picloud_compat.store.redis.connection import connect

        self._client: Any = connect(settings.server_url or "", settings)
        self._connection: Any = self._client.connection_pool.make_connection()
        self._cancel = keys.wake_cancel(name)
        self._lists = [*(keys.wake(queue) for queue in served), self._cancel]
        self._pending = False
        self.failed_at = 0.0

    @property
    def paused(self) -> bool:
        """The connection failed a short while ago."""
        return time.monotonic() - self.failed_at < RETRY_AFTER

    def filenos(self) -> list[int]:
        """The socket to watch (a blocking pop is sent first if none is outstanding)."""
        if not self._pending:
            self._connection.send_command("BLPOP", *self._lists, BLPOP_SECONDS)
            self._pending = True
        return [self._connection._sock.fileno()]

    def read(self) -> bool:
        """The socket is readable: read the pop's reply; whether a wake-up token came
        (else the pop timed out, or was cancelled)."""
        reply = self._connection.read_response()
        self._pending = False
        if reply is None:
            return False
        key = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        return key != self._cancel

    def wait(self, seconds: float) -> bool:
        """Whether a token arrives within `seconds` (False at once while paused); the
        pop does not outlive the wait."""
        deadline = time.monotonic() + seconds
        try:
            while not self.paused:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self.cancel()
                ready, _, _ = select.select(self.filenos(), [], [], left)
                if ready and self.read():
                    return True
        except Exception as exc:  # the connection: no wake-ups for a while
            self.broken(exc)
        return False

    def cancel(self) -> bool:
        """End the outstanding pop, if any; whether a token came first after all."""
        if not self._pending:
            return False
        self._client.lpush(self._cancel, 1)
        woken = self.read()
        if woken:  # the token won the race: the cancel stays queued; drop it
            self._client.delete(self._cancel)
        return woken

    def broken(self, exc: BaseException) -> None:
        """The connection failed: drop it; waits return at once for `RETRY_AFTER`."""
        log.warning("wake-ups paused: %s", exc)
        self.failed_at = time.monotonic()
        self._pending = False
        self._connection.disconnect()

    def close(self) -> None:
        self._connection.disconnect()


_wake_ups: WakeUps | None = None
_made_in = 0


def process_wake_ups(settings: Settings, served: Sequence[str], name: str) -> WakeUps | None:
    """This process's wake-up connection (made on first use; a fork never inherits
    one); None where it cannot be made. `name`: the process's worker name."""
    global _wake_ups, _made_in
    pid = os.getpid()
    if _made_in != pid:
        _made_in, _wake_ups = pid, None
        try:
            if served:
                _wake_ups = WakeUps(settings, served, name)
        except Exception:
            log.exception("no wake-ups in this process")
    return _wake_ups
