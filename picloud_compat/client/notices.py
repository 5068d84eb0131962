"""Waiting for jobs: completion is pushed, not polled.

The job store pushes a notice onto this client's list whenever one of its jobs (or a
job it asked to `watch`) finishes. `NoticeHub` drains that list with a blocking pop
and wakes every waiting thread; whichever thread is waiting takes the blocking pop
itself (leader/follower), so a lone `cloud.result` pays no thread hand-off. Callbacks
run on their own thread. As a safety net against lost notices (a Redis restart, an
expired list), long waits also re-read statuses every few seconds.
"""

from __future__ import annotations

import heapq
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from picloud_compat.client.status_table import StatusTable
from picloud_compat.errors import CloudException, ConnectionFailed, UnknownJobError
from picloud_compat.options import Callbacks
from picloud_compat.runner.hygiene import own_thread
from picloud_compat.status import FINISHED
from picloud_compat.store.contract import ClientStore
from picloud_compat.store.records import Notice

log = logging.getLogger("picloud.client")

T = TypeVar("T")

POP_SLICE = 0.5
"""Longest single blocking pop, so close() and deadlines are honoured promptly."""
HOLD_SLICE = 0.25
"""Longest pop that lets the store hold notices back: a waiter that starts beside it
may take a notice the holding pop was waiting for, which then ends no later than this."""
RECHECK_EVERY = 1.0
"""Seconds between status re-reads while waiting (a safety net, not the mechanism)."""
MAX_PAGES = 512
"""Pages of finished statuses remembered (64 Ki jids, 64 KiB each; the oldest dropped)."""
OUTAGE_GRACE = 60.0
"""Seconds a wait rides out an unreachable job store before raising ConnectionFailed."""
JOURNAL_MAX = 2_000_000
"""Finish events kept for waiters to read as news; a waiter that fell further behind
scans its pending jids instead."""
MAX_INLINE_BYTES = 32 * 1024 * 1024
"""Memory for inline results kept for jids nobody has asked about yet; beyond this they
are dropped (they stay in the store and are fetched on demand, 1,024 a round trip)."""
INLINE_OVERHEAD = 120
"""What keeping one inline result costs besides its bytes (the dict entry, the bytes
object): for a million tiny results that, not their bytes, is the memory."""


class NoticeHub:
    """One client's completion notices: finished statuses, inline results, callbacks."""

    def __init__(self, store: ClientStore, tenant: str, cid: str) -> None:
        self.store, self.tenant, self.cid = store, tenant, cid
        self._cond = threading.Condition()
        self._leader = False
        self._waiters = 0  # threads in _wait_until
        self._holding = False  # the leader's pop lets the store hold notices back
        self._beside = 0  # threads popping beside a holding leader
        self._finished = StatusTable()
        self._inline: dict[int, bytes] = {}
        self._inline_bytes = 0
        self._callbacks: dict[int, Callbacks] = {}
        self._callback_queue: queue.SimpleQueue[tuple[Callable[..., Any], int] | None] = (
            queue.SimpleQueue()
        )
        self._callback_thread: threading.Thread | None = None
        self._pump_thread: threading.Thread | None = None
        self._deleted: set[int] = set()
        self._outage_since: float | None = None
        self.recheck_all = False  # set after an outage: notices may have been lost
        self._closed = False
        # jids in the order they were learned finished: a waiter reads what is new since
        # its last look, so waiting on a million jobs costs per notice, not per pending jid
        self._journal: list[int] = []
        self._journal_base = 0  # events dropped from the journal's front
        self._highest = 0  # the highest jid heard of: new jids are above it, unless...

    # -- what waiters call --------------------------------------------------------

    def finished_status(self, jid: int) -> str | None:
        """The finished status a notice brought for `jid`, None if none yet."""
        if jid in self._deleted:
            raise UnknownJobError(jid)
        return self._finished.get(jid)

    def take_inline(self, jid: int) -> bytes | None:
        """Hand over (and forget) the small result that travelled with `jid`'s notice."""
        with self._cond:
            blob = self._inline.pop(jid, None)
            if blob is not None:
                self._inline_bytes -= len(blob) + INLINE_OVERHEAD
            return blob

    def mark_finished(self, statuses: dict[int, str]) -> None:
        """Record finished statuses read directly, and wake the waiters."""
        with self._cond:
            self._finished.update(statuses)
            self._record(statuses)
            self._cond.notify_all()

    def position(self) -> int:
        """Where the finish events stand now (a cursor for `news_since`)."""
        with self._cond:
            return self._journal_base + len(self._journal)

    def news_since(self, cursor: int) -> tuple[list[int] | None, int]:
        """Jids learned finished since `cursor`, and the new cursor; None when events
        were dropped since (the caller then looks at every jid it waits for)."""
        with self._cond:
            end = self._journal_base + len(self._journal)
            if cursor < self._journal_base:
                return None, end
            return self._journal[cursor - self._journal_base :], end

    def wait_news(self, cursor: int, deadline: float | None, wanted: int = 1) -> None:
        """Block until something finished after `cursor` (or the deadline). A caller
        that can do nothing until `wanted` more jobs finish says so: while it waits
        alone, the store holds notices back until then (one wake-up, not one per job)."""
        self._wait_until(lambda: self._journal_base + len(self._journal) > cursor, deadline, wanted)

    def _record(self, jids: Iterable[int]) -> None:
        """Append finish events (under the lock), dropping the oldest half when full."""
        self._journal.extend(jids)
        if len(self._journal) > JOURNAL_MAX:
            half = len(self._journal) // 2
            del self._journal[:half]
            self._journal_base += half

    def allocated(self, first: int, count: int) -> None:
        """Jids the store just gave to new jobs. They are above every jid heard of,
        unless the store lost its data (a Redis restarted empty, a failover that lost
        the last writes) and numbers jobs from 1 again: then what is known of earlier
        jobs with those numbers (statuses, results, deletions, callbacks) is dropped,
        or waiting on the new jobs would answer for the old ones."""
        last = first + count - 1
        with self._cond:
            if first > self._highest:
                self._highest = last
                return
            self._highest = max(self._highest, last)
            fresh = range(first, last + 1)
            for jid in [j for j in self._finished if j in fresh]:
                del self._finished[jid]
            for jid in [j for j in self._inline if j in fresh]:
                self._inline_bytes -= len(self._inline.pop(jid)) + INLINE_OVERHEAD
            self._deleted = {j for j in self._deleted if j not in fresh}
            for jid in [j for j in self._callbacks if j in fresh]:
                del self._callbacks[jid]
        log.warning(
            "jobs %d-%d were given numbers this client saw before: the store lost data "
            "(a Redis restarted without its data, or a failover); earlier jobs with those "
            "numbers are gone",
            first,
            last,
        )

    def forget(self, jids: Iterable[int]) -> None:
        """Deleted jobs: waiting on them fails at once instead of at the next recheck."""
        with self._cond:
            for jid in jids:
                self._deleted.add(jid)
                self._finished.pop(jid, None)
                blob = self._inline.pop(jid, None)
                if blob is not None:
                    self._inline_bytes -= len(blob) + INLINE_OVERHEAD

    def wait_any(self, pending: set[int], deadline: float | None) -> set[int]:
        """Block until some jid of `pending` is known finished (or the deadline)."""
        done: set[int] = set()

        def found() -> bool:
            done.update(j for j in pending if j in self._finished)
            return bool(done)

        self._wait_until(found, deadline)
        return done

    def _wait_until(
        self, ready: Callable[[], bool], deadline: float | None, wanted: int = 1
    ) -> None:
        """Wait (under the lock) until `ready()` or the deadline. One waiting thread at a
        time pops notices (the leader); the others sleep on the condition. A leader that
        waits alone, with no callbacks to run, may let the store hold notices back until
        `wanted` came, for `HOLD_SLICE` at most; a thread that starts waiting meanwhile
        pops beside it with plain pops, which get held notices too, and the next leader
        waits for it. Closing the client fails the wait: nothing would ever end it (a
        closed simulator runs no more jobs)."""
        with self._cond:
            self._waiters += 1
        try:
            self._lead_or_follow(ready, deadline, wanted)
        finally:
            with self._cond:
                self._waiters -= 1

    def _lead_or_follow(
        self, ready: Callable[[], bool], deadline: float | None, wanted: int
    ) -> None:
        while True:
            with self._cond:
                if ready():
                    return
                if self._closed:
                    raise CloudException(
                        "the connection was closed while waiting for jobs (cloud.close, "
                        "setkey, start_simulator or config.commit in another thread)"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                slice_ = POP_SLICE if remaining is None else min(POP_SLICE, remaining)
                beside = self._leader and self._holding
                if not beside and (self._leader or self._beside):
                    self._cond.wait(slice_)  # one plain pop at a time, or a notice could
                    continue  # go to a pop that does not need it while ours blocks
                if beside:
                    self._beside += 1
                else:
                    self._leader = True
                    alone = self._waiters == 1 and not self._callbacks
                    hold = wanted if alone else 1
                    self._holding = hold > 1
            if beside:  # what the leader lets the store hold back may be ours: pop too
                try:
                    self._pump(slice_, 1)
                finally:
                    with self._cond:
                        self._beside -= 1
                        self._cond.notify_all()
                continue
            try:
                self._pump(min(slice_, HOLD_SLICE) if hold > 1 else slice_, hold)
            finally:
                with self._cond:
                    self._leader = self._holding = False
                    self._cond.notify_all()

    def _pump(self, timeout: float, wanted: int = 1) -> None:
        notices = self.riding_out_outages(
            lambda: self.store.pop_notices(self.tenant, self.cid, timeout, wanted), timeout
        )
        if notices:
            self._absorb(notices)

    def riding_out_outages(self, operation: Callable[[], T], pause: float) -> T | None:
        """Run `operation`; while the job store is unreachable return None instead of
        failing, for up to OUTAGE_GRACE seconds. A Redis restart must not fail every
        waiting result(): notices lost with it are found by the next status re-check."""
        try:
            value = operation()
        except ConnectionFailed:
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
                log.warning("lost the job store; waiting for it to come back")
            if now - self._outage_since > OUTAGE_GRACE:
                self._outage_since = None
                raise
            time.sleep(min(pause, 0.5))
            return None
        if self._outage_since is not None:
            self._outage_since = None
            self.recheck_all = True
        return value

    def _absorb(self, notices: list[Notice]) -> None:
        fire: list[tuple[Callable[..., Any], int]] = []
        with self._cond:
            for n in notices:
                self._finished[n.jid] = n.status
                if n.jid > self._highest:
                    self._highest = n.jid
                if self._finished.pages > MAX_PAGES:
                    self._finished.drop_oldest_page()  # a waiter would re-read those
                result = n.result
                cost = 0 if result is None else len(result) + INLINE_OVERHEAD
                if result is not None and self._inline_bytes + cost <= MAX_INLINE_BYTES:
                    self._inline[n.jid] = result
                    self._inline_bytes += cost
                cbs = self._callbacks.pop(n.jid, None)
                if cbs:
                    funcs = cbs.on_success if n.status == "done" else cbs.on_error
                    fire.extend((f, n.jid) for f in funcs)
            self._record(n.jid for n in notices)
            self._cond.notify_all()
        for item in fire:
            self._ensure_callback_thread()
            self._callback_queue.put(item)

    # -- callbacks -----------------------------------------------------------------

    def add_callbacks(self, jids: Iterable[int], callbacks: Callbacks) -> None:
        """Run `callbacks` when each jid finishes (at once if it already has)."""
        with self._cond:
            for jid in jids:
                status = self._finished.get(jid)
                if status is None:
                    self._callbacks[jid] = callbacks
                else:  # already finished before we registered
                    funcs = callbacks.on_success if status == "done" else callbacks.on_error
                    for f in funcs:
                        self._ensure_callback_thread()
                        self._callback_queue.put((f, jid))
            if self._callbacks and (self._pump_thread is None or not self._pump_thread.is_alive()):
                self._pump_thread = own_thread(
                    threading.Thread(
                        target=self._pump_for_callbacks, name="picloud-notices", daemon=True
                    )
                )

    def _pump_for_callbacks(self) -> None:
        last_check = time.monotonic()
        while not self._closed:
            with self._cond:
                pending = set(self._callbacks)
            if not pending:
                return
            try:
                self.wait_any(pending, time.monotonic() + POP_SLICE)
                if time.monotonic() - last_check > RECHECK_EVERY:
                    last_check = time.monotonic()
                    self.recheck(pending)
            except Exception as exc:  # store unreachable: keep trying quietly
                if self._closed:
                    return  # closed meanwhile: callbacks end with the client
                log.warning("waiting for callback jobs failed: %s", exc)
                time.sleep(POP_SLICE)

    def recheck(self, pending: set[int]) -> None:
        """Read statuses directly, in case a notice was lost."""
        jids = heapq.nsmallest(2000, pending)  # a bounded sample per pass, oldest first
        statuses = self.riding_out_outages(lambda: self.store.statuses(self.tenant, jids), 0.5)
        if statuses is None:
            return
        for jid, st in zip(jids, statuses, strict=True):
            if st is None:
                raise UnknownJobError(jid)
        done = {j: s for j, s in zip(jids, statuses, strict=True) if s in FINISHED}
        if done:
            self._absorb([Notice(j, s) for j, s in done.items()])

    def _ensure_callback_thread(self) -> None:
        if self._callback_thread is None or not self._callback_thread.is_alive():
            self._callback_thread = own_thread(
                threading.Thread(target=self._run_callbacks, name="picloud-callbacks", daemon=True)
            )

    def _run_callbacks(self) -> None:
        while True:
            item = self._callback_queue.get()
            if item is None:
                return
            func, jid = item
            try:
                if _accepts_argument(func):
                    func(jid)
                else:
                    func()
            except Exception:
                log.exception("callback %r for job %s raised", func, jid)

    def close(self) -> None:
        """Stop waiting and let the callback thread finish what is queued."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._callback_queue.put(None)


def _accepts_argument(func: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return True
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            return True
    return False
