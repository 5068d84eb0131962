"""Pages of one tenant's jobs, read from the store without loading them all.

Jids are allocated in order, so the newest jobs are the highest jids: a page is a few
pipelined reads below a cursor, whether the tenant has ten jobs or a million. Filters
on what the store does not index (status, label, function, compute type) scan down
from the cursor in batches, at most `SCAN_BUDGET` jids per request; a page that stops
early says where, and the next request goes on from there, as Redis's SCAN does.

A time range needs no scan: creation times grow with jids, so the first jid created
at or after a time is found by bisection (reading at most `SCAN_BUDGET` jids, even over
billions of reserved but empty ones; past that the bound is approximate). Jids reserved
by one client and submitted after another's can break that order by a moment; rows are
still checked against the range, so a page never shows a job outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.jobspec import JobSpec, SpecCache
from picloud_compat.status import JobStatus
from picloud_compat.store.contract import BrowseStore, ClientStore

STATUSES = tuple(s.value for s in JobStatus)
PAGE_SIZE = 50
BATCH = 500
SCAN_BUDGET = 20_000
"""Jids one request may read while looking for rows that match a filter."""
_PROBE_LIMIT = 4_096  # jids read to step over a deleted range while bisecting
BULK_LIMIT = 1_000_000
"""Newest jids a bulk action reads at most per request (jids may be reserved by the
billion without jobs in them: a request must not read them all)."""
LIST_FIELDS = ("status", "created", "finished", "runtime", "spec", "attempts", "worker")


class ListingStore(ClientStore, BrowseStore, Protocol):
    """The store roles a listing reads (a structural type: RedisStore and MemoryStore)."""


class BadFilter(ValueError):
    """A filter value that cannot select anything (shown to the user as a 400)."""


@dataclass(frozen=True)
class JobFilter:
    """What the user narrowed the list to; every field is optional."""

    status: str | None = None
    label: str | None = None
    function: str | None = None  # a substring of the function's name
    type: str | None = None
    since: float | None = None  # created at or after (epoch seconds)
    until: float | None = None  # created before

    def __post_init__(self) -> None:
        """Name the bad value, so the page can say which one it was."""
        if self.status is not None and self.status not in STATUSES:
            raise BadFilter(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.type is not None and self.type not in COMPUTE_TYPES:
            raise BadFilter(f"compute type {self.type!r} is not one of {', '.join(COMPUTE_TYPES)}")
        for name in ("label", "function"):
            value = getattr(self, name)
            if value is not None and len(value) > 200:
                raise BadFilter(f"{name} is longer than 200 characters")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise BadFilter("'since' must be before 'until'")

    @property
    def scans(self) -> bool:
        """Whether rows must be read to know if they match (not just a jid range)."""
        return any((self.status, self.label, self.function, self.type))

    def matches(self, row: JobRow) -> bool:
        """Whether one read row passes every filter."""
        created = row.created or 0.0
        return (
            (self.status is None or row.status == self.status)
            and (self.label is None or row.label == self.label)
            and (self.function is None or self.function in row.function)
            and (self.type is None or row.type == self.type)
            and (self.since is None or created >= self.since)
            and (self.until is None or created < self.until)
        )


@dataclass(frozen=True)
class JobRow:
    """One line of the job list."""

    jid: int
    status: str
    created: float | None
    finished: float | None
    runtime: float | None
    attempts: int
    worker: str
    label: str
    function: str
    type: str
    priority: int


@dataclass
class JobPage:
    """A page of rows, newest first, and where to go on from."""

    rows: list[JobRow] = field(default_factory=list)
    next_below: int | None = None  # pass as `below` for the next page; None: no more
    scanned_from: int = 0  # the jids read: scanned_to <= jid < scanned_from
    scanned_to: int = 0
    last_jid: int = 0

    @property
    def stopped_early(self) -> bool:
        """A filtered scan ran out of budget before filling the page."""
        return self.next_below is not None and len(self.rows) < PAGE_SIZE


class JobLister:
    """Reads pages of one tenant's jobs; spec documents are cached per lister."""

    def __init__(self, store: ListingStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant
        self._specs = SpecCache(store.spec)
        self._probed = 0  # jids read by the bisection of the current request

    def page(self, flt: JobFilter, below: int | None = None, size: int = PAGE_SIZE) -> JobPage:
        """Up to `size` matching rows with jids below `below` (the newest if None)."""
        last = self.store.last_jid(self.tenant)
        top = last + 1 if below is None else min(below, last + 1)
        if flt.until is not None:
            top = min(top, self.first_created_at(flt.until))
        floor = self.first_created_at(flt.since) if flt.since is not None else 1
        out = JobPage(last_jid=last, scanned_from=top, scanned_to=top)
        budget = SCAN_BUDGET if flt.scans else size * 4 + BATCH
        cursor = top
        while cursor > floor and len(out.rows) < size and budget > 0:
            start = max(floor, cursor - min(BATCH, budget))
            rows = self.rows(range(cursor - 1, start - 1, -1))
            budget -= cursor - start
            for row in rows:
                if flt.matches(row):
                    out.rows.append(row)
                    if len(out.rows) == size:
                        cursor = row.jid
                        break
            else:
                cursor = start
        out.scanned_to = cursor
        out.next_below = cursor if cursor > floor else None
        return out

    def rows(self, jids: range | list[int]) -> list[JobRow]:
        """The rows of the jids that exist, in the order given."""
        jids = list(jids)
        entries = self.store.info(self.tenant, jids, LIST_FIELDS)
        return [self._row(j, e) for j, e in zip(jids, entries, strict=True) if e is not None]

    def spec(self, spec_id: object) -> JobSpec:
        """A job's spec document, parsed once per lister."""
        return self._specs.get(self.tenant, spec_id)

    def first_created_at(self, when: float) -> int:
        """The lowest jid created at or after `when` (last jid + 1 if none), by bisection
        on creation times, stepping over deleted ranges."""
        lo, hi = 1, self.store.last_jid(self.tenant) + 1
        answer, self._probed = hi, 0
        while lo < hi and self._probed < SCAN_BUDGET:  # a bound, not a scan: see the doc
            mid = (lo + hi) // 2
            probe = self._first_existing(mid, hi)
            if probe is None:
                hi = mid
            elif (probe[1] or 0.0) >= when:
                answer, hi = probe[0], mid
            else:
                lo = probe[0] + 1
        return answer

    def _first_existing(self, start: int, end: int) -> tuple[int, float | None] | None:
        """(jid, created) of the first job that exists in [start, end), reading at most
        `_PROBE_LIMIT` jids in growing windows."""
        window, read = 8, 0
        while start < end and read < _PROBE_LIMIT:
            jids = list(range(start, min(end, start + window)))
            entries = self.store.info(self.tenant, jids, ("created",))
            for jid, entry in zip(jids, entries, strict=True):
                if entry is not None:
                    return jid, _float(entry.get("created"))
            read += len(jids)
            self._probed += len(jids)
            start += len(jids)
            window *= 4
        return None

    def _row(self, jid: int, entry: dict[str, object]) -> JobRow:
        spec = self.spec(entry.get("spec"))
        return JobRow(
            jid=jid,
            status=str(entry.get("status")),
            created=_float(entry.get("created")),
            finished=_float(entry.get("finished")),
            runtime=_float(entry.get("runtime")),
            attempts=int(_float(entry.get("attempts")) or 0),
            worker=str(entry.get("worker") or ""),
            label=spec.label or "",
            function=spec.name,
            type=spec.type,
            priority=spec.priority,
        )


def matching_jids(
    lister: JobLister, wanted: Callable[[JobRow], bool], jids: list[int] | None = None
) -> list[int]:
    """The jids among the newest `BULK_LIMIT` of the tenant (or of `jids`) whose row
    passes `wanted`, read in batches: what a bulk action acts on."""
    step = BATCH * 4
    batches: Iterable[range | list[int]]
    if jids is None:
        top = lister.store.last_jid(lister.tenant)
        floor = max(0, top - BULK_LIMIT)
        batches = (range(hi, max(floor, hi - step), -1) for hi in range(top, floor, -step))
    else:
        jids = jids[:BULK_LIMIT]
        batches = (jids[i : i + step] for i in range(0, len(jids), step))
    return [row.jid for batch in batches for row in lister.rows(batch) if wanted(row)]


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
