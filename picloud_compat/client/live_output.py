"""Live output: what jobs print, shown where the waiting code runs, as they print it.

Opt-in (``with cloud.enable_output(): cloud.result(jids)``, after Modal's
``enable_output``): while a wait is in progress, the awaited jobs' stdout and stderr are
read from the store (workers stream them every half second) and written to this
process's stdout and stderr, each line prefixed with its jid, so a notebook cell or a
terminal follows the jobs as they run. What a job printed before finishing is shown
too, once. At most `FOLLOWED` jobs are followed at a time (the first ones awaited).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import TextIO

from picloud_compat.status import FINISHED
from picloud_compat.store.records import JobEntry

POLL_EVERY = 0.5
"""Seconds between reads of the followed jobs' output."""
FOLLOWED = 200
"""Jobs whose output is followed in one wait."""

_enabled = threading.local()


@contextlib.contextmanager
def enable_output() -> Iterator[None]:
    """Within this block, waits show the awaited jobs' output live (this thread)."""
    previous = getattr(_enabled, "on", False)
    _enabled.on = True
    try:
        yield
    finally:
        _enabled.on = previous


def enabled() -> bool:
    """Whether waits in this thread show output live."""
    return bool(getattr(_enabled, "on", False))


class OutputFollower:
    """Prints new output of the awaited jobs; a `Progress` that a wait updates."""

    def __init__(self, jids: list[int], read: Callable[[list[int]], list[JobEntry | None]]) -> None:
        self._jids = list(dict.fromkeys(jids))[:FOLLOWED]
        self._read = read  # jids -> their info (status, stdout, stderr)
        self._seen: dict[tuple[int, str], str] = {}
        self._done: set[int] = set()
        self._polled = 0.0

    def update(self, done: int, failed: int, pending: Collection[int]) -> None:
        """Read and print, at most every POLL_EVERY seconds."""
        now = time.monotonic()
        if now - self._polled >= POLL_EVERY:
            self._polled = now
            self._poll()

    def close(self) -> None:
        """The wait is over: show what the jobs printed last."""
        self._poll()

    def _poll(self) -> None:
        followed = [j for j in self._jids if j not in self._done]
        if not followed:
            return
        for jid, entry in zip(followed, self._read(followed), strict=True):
            if entry is None:
                self._done.add(jid)
                continue
            for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                self._show(jid, name, str(entry.get(name) or ""), stream)
            if entry.get("status") in FINISHED:
                self._done.add(jid)

    def _show(self, jid: int, name: str, text: str, stream: TextIO) -> None:
        before = self._seen.get((jid, name), "")
        # the store keeps a tail: if it moved past what was shown, show it all again
        new = text[len(before) :] if text.startswith(before) else text
        self._seen[(jid, name)] = text
        if not new:
            return
        lines = new.splitlines(keepends=True)
        stream.write("".join(f"[{jid}] {line}" for line in lines))
        if not new.endswith("\n"):
            stream.write("\n")
        stream.flush()


class Both:
    """Two followers of one wait (a progress bar and live output)."""

    def __init__(self, first: object, second: object) -> None:
        self._parts = (first, second)

    def update(self, done: int, failed: int, pending: Collection[int]) -> None:
        """Tell both."""
        for part in self._parts:
            part.update(done, failed, pending)  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close both."""
        for part in self._parts:
            part.close()  # type: ignore[attr-defined]
