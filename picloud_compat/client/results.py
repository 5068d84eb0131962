"""`cloud.iresult`: results in jid order, as they arrive, with read-ahead.

Unlike a generator, the iterator survives a failed job: `next()` raises that job's
`CloudException` and the following `next()` carries on with the next jid, as PiCloud's
did. Results of already-finished jobs after the head are fetched in one batch
(`num_in_parallel` at a time).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from typing import Any

from picloud_compat.client.progress import NoProgress, Progress
from picloud_compat.client.waiting import Waiter
from picloud_compat.errors import CloudException


class _Rest(Collection[int]):
    """The jids after the iterator's position, without copying them at every `next()`
    (a million-job iteration would otherwise copy a million-element tail each time)."""

    def __init__(self, ids: list[int], pos: int) -> None:
        self._ids, self._pos = ids, pos

    def __len__(self) -> int:
        return len(self._ids) - self._pos

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._ids, self._pos, None)

    def __contains__(self, jid: object) -> bool:
        return jid in self._ids[self._pos :]


class ResultIterator:
    """Iterates results in jid order; a failed job raises once, then iteration goes on."""

    def __init__(
        self,
        waiter: Waiter,
        ids: list[int],
        timeout: float | None,
        num_in_parallel: int,
        ignore_errors: bool,
        progress: Progress | None = None,
    ) -> None:
        if num_in_parallel < 1 or num_in_parallel > 1024:
            num_in_parallel = 1024
        self._waiter = waiter
        self._ids = ids
        self._timeout = timeout
        self._window = num_in_parallel
        self._ignore_errors = ignore_errors
        self._pos = 0
        self._ready: dict[int, Any] = {}
        self._watched = False
        self._progress = progress or NoProgress()
        self._done = self._failed = 0

    def __iter__(self) -> ResultIterator:
        return self

    def __len__(self) -> int:
        return len(self._ids)

    def __next__(self) -> Any:
        if self._pos >= len(self._ids):
            self._progress.close()
            raise StopIteration
        jid = self._ids[self._pos]
        if jid not in self._ready:
            self._fetch(jid)
        value = self._ready.pop(jid)
        self._pos += 1
        if isinstance(value, CloudException):
            self._failed += 1
        else:
            self._done += 1
        self._progress.update(self._done, self._failed, _Rest(self._ids, self._pos))
        if self._pos >= len(self._ids):
            self._progress.close()
        if isinstance(value, CloudException) and not self._ignore_errors:
            raise value
        return value

    next = __next__  # PiCloud's Python 2 spelling

    def _fetch(self, head: int) -> None:
        waiter = self._waiter
        if not self._watched:
            waiter.watch(set(self._ids))
            self._watched = True
        statuses = waiter.wait([head], self._timeout, True, "__iresult iterator timed out")
        window = self._ids[self._pos : self._pos + self._window]
        statuses.update(waiter.finished_statuses(window))
        ready = [j for j in dict.fromkeys(window) if j in statuses and j not in self._ready]
        for jid, value in zip(ready, waiter.collect(ready, statuses), strict=True):
            self._ready[jid] = value
