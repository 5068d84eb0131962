"""Normalising the many ways PiCloud accepts jids: an int, a range, or an iterable of both."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any


def normalize(jids: Any) -> tuple[bool, list[int]]:
    """Return (was a single jid, list of jids); TypeError('jid(s) must be integers')."""
    if _is_jid(jids):
        return True, [int(jids)]
    if isinstance(jids, str | bytes) or not isinstance(jids, Iterable):
        raise TypeError(f"jid(s) must be integers, got {jids!r}")
    out: list[int] = []
    for item in jids:
        if _is_jid(item):
            out.append(int(item))
        elif isinstance(item, range):
            out.extend(item)
        else:
            raise TypeError(f"jid(s) must be integers, got {item!r}")
    return False, out


def _is_jid(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RangeSet:
    """A compact set of jids made of the contiguous ranges `map` produces."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []  # exclusive

    def add_range(self, first: int, count: int) -> None:
        """Add [first, first+count), merging with overlapping or adjacent ranges."""
        if count <= 0:
            return
        start, end = first, first + count
        lo = bisect.bisect_left(self._ends, start)  # first range that ends at/after start
        hi = bisect.bisect_right(self._starts, end)  # ranges starting after end stay
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def __contains__(self, jid: object) -> bool:
        if not isinstance(jid, int):
            return False
        i = bisect.bisect_right(self._starts, jid) - 1
        return i >= 0 and jid < self._ends[i]
