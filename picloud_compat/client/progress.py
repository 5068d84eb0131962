"""Progress of a wait on many jobs: a live bar in Jupyter and on terminals.

`cloud.result`, `cloud.join` and `cloud.iresult` on several jobs show how many are
done, failed and running (tqdm: its notebook widget in Jupyter, a text bar on a
terminal). Nothing is shown in plain scripts (stderr not a terminal, no notebook), for a
single job, or inside jobs; the ``progress`` setting (``auto``, ``on``, ``off``;
``cloud.config.progress`` or PICLOUD_PROGRESS) overrides that.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Collection
from typing import Any, Protocol

from picloud_compat.runner.execution import current_job

RUNNING_EVERY = 1.0
"""Seconds between reads of how many of the awaited jobs are running."""
RUNNING_UP_TO = 5000
"""Awaited jobs beyond which running ones are not counted (a status read each time)."""


class Progress(Protocol):
    """What a wait reports as it goes."""

    def update(self, done: int, failed: int, pending: Collection[int]) -> None:
        """`done` and `failed` of the total have finished; `pending` have not."""
        ...

    def close(self) -> None:
        """The wait is over (or failed)."""
        ...


class NoProgress:
    """Shows nothing."""

    def update(self, done: int, failed: int, pending: Collection[int]) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where the bar is a widget)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = getattr(shell, "get_ipython", lambda: None)()
    return ipython is not None and getattr(ipython, "kernel", None) is not None


def wanted(setting: str, total: int) -> bool:
    """Whether a wait on `total` jobs shows progress here."""
    if setting == "off" or current_job() is not None or total < 2:
        return False
    if setting == "on":
        return True
    return in_notebook() or sys.stderr.isatty()


class ProgressBar:
    """A tqdm bar counting finished jobs, with done/failed/running as its postfix."""

    def __init__(self, total: int, what: str, running: Any) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=what, unit="job", leave=False)
        self._running = running  # pending jids -> how many of them are processing
        self._counted_at = 0.0
        self._running_now = 0
        self._shown = (-1, -1, -1)

    def update(self, done: int, failed: int, pending: Collection[int]) -> None:
        """Advance to `done + failed` and refresh the counts (running: about once a second)."""
        now = time.monotonic()
        if pending and len(pending) <= RUNNING_UP_TO and now - self._counted_at >= RUNNING_EVERY:
            self._counted_at = now
            self._running_now = self._running(pending)
        shown = (done, failed, self._running_now if pending else 0)
        if shown == self._shown:
            return
        self._shown = shown
        self._bar.n = done + failed
        self._bar.set_postfix(done=shown[0], failed=shown[1], running=shown[2], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        """Remove the bar (leave=False): the cell or terminal keeps only the answer."""
        self._bar.close()


def progress_for(setting: str, total: int, what: str, running: Any) -> Progress:
    """A bar if one is wanted here (see `wanted`), else `NoProgress`."""
    if not wanted(setting, total):
        return NoProgress()
    return ProgressBar(total, what, running)
