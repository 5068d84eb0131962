"""Checks and shapes that submitting needs before anything reaches the store."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

MAX_CHUNK_JOBS = 256
MAX_CHUNK_BYTES = 8 * 1024 * 1024
ONE_REQUEST_JOBS = 256  # so never more than MAX_CHUNKS chunks (store.records)
ONE_REQUEST_BYTES = 256 * 1024
_PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})


def display_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` (just the name for ``__main__``): what Flower and info show."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        name = type(func).__name__
    module = getattr(func, "__module__", None)
    return str(name) if module in (None, "__main__") else f"{module}.{name}"


@functools.lru_cache(maxsize=256)
def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None  # builtins and some callables have no inspectable signature


def check_signature(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """Raise the TypeError a real call would raise, before anything is submitted."""
    try:
        sig = _signature(func)
    except TypeError:  # unhashable callable
        sig = inspect.signature(func)
    if sig is None:
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{display_name(func)}() {exc}") from None


def plain_sizes(rows: list[tuple[Any, ...]], limit: int) -> list[int] | None:
    """Estimated sealed sizes if every value is plain and safely under the size limit,
    else None (the caller then serializes everything up front)."""
    sizes = []
    for row in rows:
        total = 128
        for value in row:
            if type(value) not in _PLAIN_TYPES:
                return None
            total += len(value) + 16 if isinstance(value, str | bytes) else 16
        if total * 4 > limit * 3:  # str may grow when encoded: keep a wide margin
            return None
        sizes.append(total)
    return sizes


def chunk_ranges(sizes: list[int], concurrency: int) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of ~N/concurrency jobs, capped in count and bytes: a chunk
    per process. Work stealing evens out the end (an idle process takes the back half
    of a busy one's queued jobs), so more chunks would only add messages, submissions
    and claims (mp.Pool, without stealing, makes four per process)."""
    count = len(sizes)
    size = max(1, min(MAX_CHUNK_JOBS, math.ceil(count / concurrency)))
    start = 0
    while start < count:
        end, total = start, 0
        while end < count and end - start < size:
            if end > start and total + sizes[end] > MAX_CHUNK_BYTES:
                break
            total += sizes[end]
            end += 1
        yield start, end
        start = end


def fits_one_request(sizes: list[int]) -> bool:
    """Whether a map of jobs of these (estimated) sealed sizes is submitted in one
    request, all its chunks together: one allocation and one script instead of a round
    trip per chunk, so every process starts at once. A bigger map goes chunk by chunk,
    so workers start on the first while the rest is still being prepared."""
    return len(sizes) <= ONE_REQUEST_JOBS and sum(sizes) <= ONE_REQUEST_BYTES
