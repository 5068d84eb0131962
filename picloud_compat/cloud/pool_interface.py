"""``cloud.pool_interface``: `multiprocessing.Pool`'s methods, running on the cloud.

    from cloud import pool_interface as pool
    pool.map(f, xs); r = pool.apply_async(f, (1,)); r.get(timeout=5)

Unlike the original (which ignored them), timeouts are honoured: `AsyncResult.get`
raises `pool_interface.TimeoutError`, which is both a `multiprocessing.TimeoutError`
and a `cloud.CloudTimeoutError`.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from picloud_compat.client.session import get_client
from picloud_compat.errors import CloudTimeoutError

__all__ = [
    "AsyncResult",
    "TimeoutError",
    "apply",
    "apply_async",
    "imap",
    "imap_unordered",
    "map",
    "map_async",
]


class TimeoutError(CloudTimeoutError, multiprocessing.TimeoutError):
    """`AsyncResult.get(timeout)` ran out of time."""


class AsyncResult:
    """The result of `apply_async` / `map_async` (one jid, or a list of jids)."""

    def __init__(
        self,
        jids: int | list[int],
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> None:
        self._jids = jids
        self._client = get_client()
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        if callback is not None or error_callback is not None:
            threading.Thread(
                target=self._notify, args=(callback, error_callback), daemon=True
            ).start()

    def _resolve(self, timeout: float | None) -> None:
        if self._done.is_set():
            return
        if timeout is not None and timeout <= 0 and not self.ready():
            # multiprocessing's meaning of timeout=0 (PiCloud's own result() waits forever)
            raise TimeoutError("AsyncResult.get timed out", jid=self._jids)
        try:
            self._value = self._client.result(self._jids, timeout=timeout)
        except CloudTimeoutError as exc:
            raise TimeoutError(str(exc.parameter), jid=exc.jid) from None
        except Exception as exc:
            self._error = exc
        self._done.set()

    def _notify(self, callback: Any, error_callback: Any) -> None:
        self._resolve(None)
        if self._error is None and callback is not None:
            callback(self._value)
        elif self._error is not None and error_callback is not None:
            error_callback(self._error)

    def get(self, timeout: float | None = None) -> Any:
        """The value (or list of values); re-raises a job's CloudException."""
        self._resolve(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self, timeout: float | None = None) -> None:
        """Block until the jobs finish or `timeout` passes; never raises a job's error."""
        try:
            self._resolve(timeout)
        except TimeoutError:
            pass

    def ready(self) -> bool:
        """True once every job has finished (done, error, killed or stalled)."""
        if self._done.is_set():
            return True
        ids = self._jids if isinstance(self._jids, list) else [self._jids]
        statuses = self._client.status(ids)
        return all(s in ("done", "error", "killed", "stalled") for s in statuses)

    def successful(self) -> bool:
        """True if every job succeeded; ValueError if they have not all finished."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        self.wait()
        return self._error is None


def apply(
    func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None
) -> Any:
    """Run `func(*args, **kwds)` as a cloud job and wait for its result."""
    return apply_async(func, args, kwds).get()


def apply_async(
    func: Callable[..., Any],
    args: Iterable[Any] = (),
    kwds: dict[str, Any] | None = None,
    callback: Callable[[Any], Any] | None = None,
    error_callback: Callable[[BaseException], Any] | None = None,
) -> AsyncResult:
    """Start `func(*args, **kwds)` as a cloud job; callbacks run in a background thread."""
    jid = get_client().call(func, *tuple(args), **(kwds or {}))
    return AsyncResult(jid, callback, error_callback)


def map(
    func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
) -> list[Any]:
    """`chunksize` is accepted for compatibility; the platform chunks by itself."""
    return map_async(func, iterable, chunksize).get()


def map_async(
    func: Callable[[Any], Any],
    iterable: Iterable[Any],
    chunksize: int | None = None,
    callback: Callable[[Any], Any] | None = None,
    error_callback: Callable[[BaseException], Any] | None = None,
) -> AsyncResult:
    """Start one cloud job per item without waiting (`chunksize` is ignored)."""
    jids = get_client().map(func, list(iterable))
    return AsyncResult(jids, callback, error_callback)


def imap(
    func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
) -> Iterator[Any]:
    """Results in input order, as they arrive."""
    client = get_client()
    return iter(client.iresult(client.map(func, list(iterable))))


def imap_unordered(
    func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
) -> Iterator[Any]:
    """Results in the order the jobs finish. As multiprocessing's, a failed job raises
    its exception from `next()` and the iterator goes on with the rest."""
    client = get_client()
    return _Unordered(client, client.map(func, list(iterable)))


class _Unordered(Iterator[Any]):
    """`imap_unordered`'s iterator: an object, not a generator, because a generator
    that raises is finished, and the jobs after a failed one would be lost."""

    def __init__(self, client: Any, jids: Sequence[int]) -> None:
        self._client = client
        self._pending = set(jids)
        self._ready: list[int] = []

    def __next__(self) -> Any:
        hub = self._client.hub
        while not self._ready:
            if not self._pending:
                raise StopIteration
            hub.wait_any(self._pending, time.monotonic() + 1.0)
            finished = {j for j in self._pending if hub.finished_status(j) is not None}
            if not finished:
                hub.recheck(self._pending)
                continue
            self._pending -= finished
            self._ready = sorted(finished, reverse=True)
        return self._client.result(self._ready.pop())
