"""`Waiter`: waiting for jobs and collecting their results, for one tenant.

This is the seam `result`, `join`, `iresult`, the pool interface and the gateway all
use. Completion is pushed (`notices.NoticeHub`); statuses are re-read now and then as
a safety net. Inside a job, a wait on queued jobs runs them in this process
(`runner.helping`) so nested jobs cannot deadlock a pool.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

from picloud_compat import jids as jidlib
from picloud_compat.client.notices import RECHECK_EVERY, NoticeHub
from picloud_compat.client.progress import NoProgress, Progress
from picloud_compat.client.status_table import StatusTable
from picloud_compat.errors import (
    AuthenticityError,
    CloudException,
    CloudTimeoutError,
    ResultLoadError,
    UnauthenticResult,
    UnknownJobError,
)
from picloud_compat.runner.helping import helper
from picloud_compat.serialization import Codec
from picloud_compat.status import FAILED, FINISHED, KILLED_MESSAGE, STALLED_MESSAGE
from picloud_compat.store.contract import ClientStore


class _Finished(StatusTable):
    """Finished statuses by jid (a byte each), counting the failed ones as they arrive:
    a wait on a million jobs must not recount them at every notice."""

    failed = 0

    def __setitem__(self, jid: int, status: str) -> None:
        if jid not in self:
            self.failed += status in FAILED
        super().__setitem__(jid, status)


class Waiter:
    """Waits on a tenant's jobs and turns finished ones into values or exceptions."""

    def __init__(
        self, store: ClientStore, tenant: str, hub: NoticeHub, codec: Codec, mine: jidlib.RangeSet
    ) -> None:
        self.store, self.tenant, self.hub, self.codec = store, tenant, hub, codec
        self._mine = mine  # jids this client submitted: notices come without asking
        self._watched: set[int] = set()

    def wait(
        self,
        ids: list[int],
        timeout: float | None,
        ignore_errors: bool,
        timeout_message: str,
        progress: Progress | None = None,
    ) -> MutableMapping[int, str]:
        """Wait until every jid finished; raise the first failure unless ignore_errors.
        Returns the finished status of each jid. `progress` hears of every change."""
        shown = progress or NoProgress()
        try:
            return self._wait(ids, timeout, ignore_errors, timeout_message, shown)
        finally:
            shown.close()

    def running(self, jids: Collection[int]) -> int:
        """How many of `jids` are running now (one status read: for progress bars)."""
        listed = sorted(jids)
        return sum(s == "processing" for s in self.store.statuses(self.tenant, listed))

    def _wait(
        self,
        ids: list[int],
        timeout: float | None,
        ignore_errors: bool,
        timeout_message: str,
        progress: Progress,
    ) -> MutableMapping[int, str]:
        deadline = None if not timeout else time.monotonic() + timeout
        statuses = _Finished()
        pending = set(ids)
        cursor = self.hub.position()
        self._resolve_known(pending, statuses)
        self.watch(pending)
        self._resolve_known(pending, statuses)
        last_check = time.monotonic()
        assist = helper()
        # with nothing to show as jobs finish, nothing can happen before they all have
        # (or one failed): the store may hold the notices back until then
        quiet = isinstance(progress, NoProgress) and assist is None
        while True:
            failures = statuses.failed
            progress.update(len(statuses) - failures, failures, pending)
            if not ignore_errors and failures:
                failed = [j for j in ids if statuses.get(j) in FAILED]
                raise self.failure(failed[0], statuses[failed[0]])
            if not pending:
                return statuses
            if deadline is not None and time.monotonic() >= deadline:
                raise CloudTimeoutError(timeout_message, jid=sorted(pending))
            if assist is not None and assist.help(self.store, self.tenant, pending):
                self._resolve_known(pending, statuses)
                continue
            slice_end = time.monotonic() + (RECHECK_EVERY if assist is None else 0.05)
            until = slice_end if deadline is None else min(deadline, slice_end)
            self.hub.wait_news(cursor, until, len(pending) if quiet else 1)
            cursor, progressed = self._resolve_news(cursor, pending, statuses)
            if progressed:
                last_check = time.monotonic()  # notices flow: nothing seems lost
            due = time.monotonic() - last_check >= RECHECK_EVERY or self.hub.recheck_all
            if pending and due:
                self.hub.recheck_all = False
                last_check = time.monotonic()
                self.hub.recheck(pending)
                cursor, _ = self._resolve_news(cursor, pending, statuses)

    def finished_statuses(self, ids: list[int]) -> dict[int, str]:
        """Statuses already known to be finished (no waiting, no store access)."""
        out = {}
        for jid in ids:
            st = self.hub.finished_status(jid)
            if st is not None:
                out[jid] = st
        return out

    def _resolve_news(
        self, cursor: int, pending: set[int], statuses: MutableMapping[int, str]
    ) -> tuple[int, bool]:
        """Move the jids that finished since `cursor` from `pending` to `statuses`: work
        per finished job, not per pending one. Returns the new cursor and whether any
        of ours finished."""
        news, cursor = self.hub.news_since(cursor)
        before = len(pending)
        if news is None:  # fell behind the hub's memory: look at every pending jid
            self._resolve_known(pending, statuses)
        else:
            for jid in news:
                if jid in pending:
                    status = self.hub.finished_status(jid)
                    if status is not None:
                        statuses[jid] = status
                        pending.discard(jid)
        return cursor, len(pending) < before

    def _resolve_known(self, pending: set[int], statuses: MutableMapping[int, str]) -> None:
        known = self.finished_statuses(list(pending))
        statuses.update(known)
        pending.difference_update(known)

    def watch(self, jids: set[int]) -> None:
        """Ask for notices about jobs this client did not submit (atomically with
        reading their status, so no completion slips between)."""
        foreign = sorted(j for j in jids if j not in self._mine and j not in self._watched)
        if not foreign:
            return
        current = self.store.watch(self.tenant, self.hub.cid, foreign)
        finished = {}
        for jid, st in zip(foreign, current, strict=True):
            if st is None:
                raise UnknownJobError(jid)
            self._watched.add(jid)
            if st in FINISHED:
                finished[jid] = st
        if finished:
            self.hub.mark_finished(finished)

    def failure(self, jid: int, status: str) -> CloudException:
        """The CloudException PiCloud raised for a job that finished `status`."""
        text = None
        if status in ("error", "killed"):
            entry = self.store.info(self.tenant, [jid], ["exception"])[0]
            found = entry.get("exception") if entry else None
            text = found if isinstance(found, str) else None
        if status == "stalled":
            text = STALLED_MESSAGE
        if not text:
            text = KILLED_MESSAGE if status == "killed" else "unknown error"
        return CloudException(text, jid=jid, status=status)

    def collect(self, ids: list[int], statuses: Mapping[int, str]) -> list[Any]:
        """Values of finished jobs: a CloudException in place of each failed one, and a
        `ResultLoadError` (naming the jid) for a result that cannot be loaded here."""
        blobs: dict[int, bytes | None] = {}
        missing = []
        for jid in ids:
            if statuses[jid] == "done":
                blob = self.hub.take_inline(jid)
                if blob is None:
                    missing.append(jid)
                else:
                    blobs[jid] = blob
        if missing:
            unique = sorted(set(missing))
            for jid, found in zip(unique, self.store.results(self.tenant, unique), strict=True):
                blobs[jid] = found
        out: list[Any] = []
        for jid in ids:
            st = statuses[jid]
            if st != "done":
                out.append(self.failure(jid, st))
                continue
            blob = blobs.get(jid)
            if blob is None:
                raise UnknownJobError(jid)  # deleted between finishing and reading
            try:
                out.append(self.codec.load(blob))
            except AuthenticityError as exc:  # never unpickled: not this tenant's blob
                out.append(UnauthenticResult(jid, exc))
            except Exception as exc:  # one unloadable result must not hide the others
                out.append(ResultLoadError(jid, exc))
        return out

    def results_now(self, jids: list[int]) -> list[Any]:
        """Values (or CloudExceptions) of jobs known to be finished, without waiting."""
        current = self.store.statuses(self.tenant, jids)
        statuses: dict[int, str] = {}
        for jid, st in zip(jids, current, strict=True):
            if st is None:
                raise UnknownJobError(jid)
            statuses[jid] = st
        return self.collect(jids, statuses)
