"""`Client`: the logic behind every ``cloud.*`` job function, for one tenant.

The facades (``cloud``, ``cloud.mp``) delegate to a `Client`. A client holds a store
(`TenantStore`: Redis on a cluster, the simulator's memory store, or its proxy inside
simulator processes) and a `Mode` for whatever else differs; it never branches on
which one it has. Submitting is here; waiting and collecting results are the
`Waiter`'s (`waiting.py`), which `result`, `join` and `iresult` share.
"""

from __future__ import annotations

import functools
import itertools
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from picloud_compat import jids as jidlib
from picloud_compat import options as opts
from picloud_compat.client import live_output, submitting
from picloud_compat.client.availability import Availability
from picloud_compat.client.handles import JobId, JobList
from picloud_compat.client.info import build_info, info_fields
from picloud_compat.client.live_output import Both
from picloud_compat.client.mode import Mode
from picloud_compat.client.notices import NoticeHub
from picloud_compat.client.progress import Progress, progress_for
from picloud_compat.client.results import ResultIterator
from picloud_compat.client.waiting import Waiter
from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.environments.registry import KnownEnvironments
from picloud_compat.errors import ConnectionFailed, ResultLoadError, UnknownJobError
from picloud_compat.files.base import FileStore
from picloud_compat.files.blobs import blob_offload
from picloud_compat.jobspec import JobSpec
from picloud_compat.runner.execution import current_job
from picloud_compat.serialization import Codec
from picloud_compat.settings import RUNTIME_OVERRIDES, Settings
from picloud_compat.store.contract import TenantStore
from picloud_compat.store.records import JobEntry, MissingFunction, QueueService, Submission
from picloud_compat.tenancy import signer_for


class Client:
    """One tenant's view of the platform: submit, query, wait, kill, delete."""

    def __init__(
        self,
        settings: Settings,
        store: TenantStore,
        tenant: str,
        mode: Mode,
        *,
        notices: bool = True,
        owns: bool = True,
        plain_results: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tenant = tenant
        self.mode = mode
        # Without notices (a server such as the gateway, which never waits on jobs) the
        # store pushes nothing for this client, so nothing piles up for it.
        self.cid = secrets.token_hex(8) if notices else ""
        offload = blob_offload(settings, tenant) if mode.name == "redis" else None
        signer = signer_for(settings, tenant)
        self.codec = Codec(signer, settings.max_transmit_data, offload, plain_only=plain_results)
        self.hub = NoticeHub(store, tenant, self.cid)
        self._mine = jidlib.RangeSet()
        self.waiter = Waiter(store, tenant, self.hub, self.codec, self._mine)
        self._stored_functions: set[str] = set()
        self._availability = Availability(store)
        self._environments = KnownEnvironments(store, tenant)
        self._lock = threading.Lock()
        self._owns = owns  # closing this client closes its store and mode
        self.closed = False

    @property
    def owns(self) -> bool:
        """Whether closing this client closes its store and mode."""
        return self._owns

    @property
    def connection_type(self) -> str:
        """PiCloud's name for the mode: "redis", "simulation" or "multiprocessing"."""
        return self.mode.name

    # -- submitting ----------------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> JobId:
        """Run ``func(*args, **kwargs)`` as one job; return its jid (an int)."""
        if not callable(func):
            raise TypeError(f"cloud.call first argument ({func!r}) is not callable")
        reserved, user_kwargs = opts.split_kwargs(kwargs)
        options, callbacks = opts.parse(reserved)
        submitting.check_signature(func, args, user_kwargs)
        fn_sha, fn_blob = self.codec.function(func)
        self.codec.ship_argument_types(itertools.chain(args, user_kwargs.values()))
        blob = self.codec.arguments(args, user_kwargs, options.fast_serialization)
        spec = JobSpec.of(options, fn_sha, submitting.display_name(func))
        jid = self._submit(spec, fn_blob, [blob], first=None)
        if callbacks:
            self.hub.add_callbacks([jid], callbacks)
        return JobId(jid, self, spec)

    def submit_stored(
        self,
        spec: JobSpec,
        fn_blob: bytes,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> int:
        """Submit an already-sealed function with its spec (crons, REST endpoints)."""
        blob = self.codec.arguments(args, kwargs, spec.fast_serialization)
        return self._submit(spec, fn_blob, [blob], first=None)

    def map(self, func: Callable[..., Any], *iterables: Any, **kwargs: Any) -> JobList:
        """One job per element of the zipped iterables (padded with None); jids in order
        (a list of ints)."""
        if not callable(func):
            raise TypeError(f"cloud.map first argument ({func!r}) is not callable")
        if not iterables:
            raise ValueError("cloud.map needs at least 2 arguments")
        reserved, user_kwargs = opts.split_kwargs(kwargs)
        if user_kwargs:
            name = next(iter(user_kwargs))
            raise ValueError(
                f"Cannot pass keyword arguments into cloud.map. Unexpected keyword argument {name}"
            )
        for i, it in enumerate(iterables):
            if isinstance(it, str | bytes) or not isinstance(it, Iterable):
                raise TypeError(f"map argument {i + 1} ({it!r}) is not an iterable")
        options, callbacks = opts.parse(reserved)
        rows = list(itertools.zip_longest(*iterables))
        if not rows:
            return JobList((), self)
        fn_sha, fn_blob = self.codec.function(func)
        spec = JobSpec.of(options, fn_sha, submitting.display_name(func))
        fast = options.fast_serialization
        sizes = submitting.plain_sizes(rows, self.settings.max_transmit_data)
        serialize: Callable[[int], bytes | memoryview]
        if sizes is None:
            # Anything but plain values could fail to pickle: serialize every row before
            # submitting any, so a bad row leaves nothing behind.
            self.codec.ship_argument_types({type(v) for row in rows for v in row})
            blobs = [self.codec.arguments(row, None, fast) for row in rows]
            sizes = [len(b) for b in blobs]
            serialize = blobs.__getitem__
        else:
            # Plain values (numbers, strings, bytes) cannot fail: serialize each chunk just
            # before sending it, so workers start while the rest is still being prepared.
            def serialize(index: int) -> bytes | memoryview:
                return self.codec.arguments(rows[index], None, fast)

        ranges = list(submitting.chunk_ranges(sizes, self.store.concurrency(options.type)))
        if submitting.fits_one_request(sizes):
            blobs_all = [serialize(i) for i in range(len(rows))]
            chunks = tuple(end - start for start, end in ranges)
            first = self._submit(spec, fn_blob, blobs_all, first=None, chunks=chunks)
            return self._submitted(JobList(range(first, first + len(rows)), self, spec), callbacks)
        first = self.store.allocate(self.tenant, len(rows))
        submitted = 0
        try:
            for start, end in ranges:
                chunk = [serialize(i) for i in range(start, end)]
                self._submit(spec, fn_blob, chunk, first=first + start)
                submitted = end
        except ConnectionFailed as exc:
            if submitted:
                exc.parameter = (
                    f"{exc.parameter}; jobs {first}..{first + submitted - 1} were submitted, "
                    f"the remaining {len(rows) - submitted} were not"
                )
                exc.jid = list(range(first, first + submitted))
            raise
        return self._submitted(JobList(range(first, first + len(rows)), self, spec), callbacks)

    def _submitted(self, jids: JobList, callbacks: opts.Callbacks) -> JobList:
        if callbacks:
            self.hub.add_callbacks(jids, callbacks)
        return jids

    def _submit(
        self,
        spec: JobSpec,
        fn_blob: bytes,
        args: Sequence[bytes | memoryview],
        first: int | None,
        chunks: tuple[int, ...] = (),
    ) -> int:
        self._availability.check(spec.type, spec.cores)
        if spec.env:
            self._environments.check(spec.env)
        parent = current_job()
        sub = Submission(
            cid=self.cid,
            fn_sha=spec.fn,
            fn_blob=None if spec.fn in self._stored_functions else fn_blob,
            spec_id=spec.id,
            spec_json=spec.json,
            queue=spec.type,
            priority=spec.priority,
            depends_on=spec.depends_on,
            depends_on_errors=spec.depends_on_errors,
            args=args,
            display_name=spec.name,
            label=spec.label,
            env=spec.env,
            first=first,
            parent=parent.jid if parent and parent.tenant == self.tenant else None,
            chunks=chunks,
        )
        try:
            jid = self.store.submit(self.tenant, sub)
        except MissingFunction:  # it expired from the store since we last sent it
            sub.fn_blob = fn_blob
            jid = self.store.submit(self.tenant, sub)
        self._stored_functions.add(spec.fn)
        self.hub.allocated(jid, len(args))
        self._mine.add_range(jid, len(args))
        return jid

    # -- querying ------------------------------------------------------------------

    def services(self) -> dict[str, QueueService]:
        """Per compute type: the live processes serving it and their runtimes."""
        return {name: self.store.service(name) for name in COMPUTE_TYPES}

    def prebuilt(self, service: QueueService) -> list[str]:
        """This key's environments that workers of `service` built before starting
        (``picloud worker --env``); others build theirs on first use."""
        prefix = f"{self.tenant}:"
        return [e[len(prefix) :] for e in service.environments if e.startswith(prefix)]

    def status(self, jids: Any) -> str | list[str]:
        """Status of a jid, or the list of statuses of a list of jids."""
        single, ids = jidlib.normalize(jids)
        statuses = self._statuses(ids)
        return statuses[0] if single else statuses

    def _statuses(self, ids: list[int]) -> list[str]:
        out: list[str] = []
        for jid, st in zip(ids, self.store.statuses(self.tenant, ids), strict=True):
            if st is None:
                raise UnknownJobError(jid)
            out.append(st)
        return out

    def info(self, jids: Any, info_requested: Any = None) -> dict[int, dict[str, Any]]:
        """{jid: {field: value}} (see `client.info`)."""
        _, ids = jidlib.normalize(jids)
        return build_info(self.store, self.tenant, ids, info_fields(info_requested))

    def list_jobs(self, label: str | None = None, status: str | None = None) -> list[int]:
        """Jids of this API key's jobs, optionally only those with a label / status."""
        labels: dict[str, str | None] = {}
        out = []
        for jid, st, spec_id in self.store.jobs(self.tenant):
            if status is not None and st != status:
                continue
            if label is not None:
                if spec_id not in labels:
                    raw = self.store.spec(self.tenant, spec_id)
                    labels[spec_id] = JobSpec.from_json(raw).label if raw else None
                if labels[spec_id] != label:
                    continue
            out.append(jid)
        return out

    # -- waiting -------------------------------------------------------------------

    def join(
        self,
        jids: Any,
        timeout: float | None = None,
        ignore_errors: bool = False,
        deadlock_check: bool = True,
    ) -> None:
        """Block until the jobs finish; raise CloudException for the first failed one."""
        _, ids = jidlib.normalize(jids)
        self.waiter.wait(ids, timeout, ignore_errors, "cloud.join timed out", self._bar(ids))

    def result(
        self,
        jids: Any,
        timeout: float | None = None,
        ignore_errors: bool = False,
        deadlock_check: bool = True,
    ) -> Any:
        """The value of a job, or the list of values of a list of jobs."""
        single, ids = jidlib.normalize(jids)
        if not ids:
            return []
        message = "cloud.result timed out"
        statuses = self.waiter.wait(ids, timeout, ignore_errors, message, self._bar(ids))
        values = self.waiter.collect(ids, statuses)
        if not ignore_errors:
            unloadable = next((v for v in values if isinstance(v, ResultLoadError)), None)
            if unloadable is not None:
                raise unloadable
        return values[0] if single else values

    def iresult(
        self,
        jids: Any,
        timeout: float | None = None,
        num_in_parallel: int = 10,
        ignore_errors: bool = False,
    ) -> ResultIterator:
        """Results in jid order as they arrive; a failed job raises, then goes on."""
        _, ids = jidlib.normalize(jids)
        bar = self._bar(ids)
        return ResultIterator(self.waiter, ids, timeout, num_in_parallel, ignore_errors, bar)

    def _bar(self, ids: list[int]) -> Progress:
        """A progress bar for a wait on `ids`, where one is wanted (see `progress`)."""
        unique = len(set(ids))
        # cloud.config.progress set after this client was made still counts
        setting = str(RUNTIME_OVERRIDES.get("progress", self.settings.progress))
        bar = progress_for(setting, unique, "jobs", self.waiter.running)
        if not live_output.enabled():
            return bar

        def read(jids: list[int]) -> list[JobEntry | None]:
            return self.store.info(self.tenant, jids, ["status", "stdout", "stderr"])

        return Both(bar, live_output.OutputFollower(ids, read))

    # -- services ------------------------------------------------------------------

    @functools.cached_property
    def files(self) -> FileStore:
        """This tenant's `cloud.files` storage (S3, or a directory when simulated)."""
        return self.mode.files(self.tenant)

    # -- control -------------------------------------------------------------------

    def kill(self, jids: Any = None) -> None:
        """Kill jobs (every unfinished job of this API key if `jids` is None)."""
        if jids is None:
            self.store.kill(self.tenant, None)
            return
        _, ids = jidlib.normalize(jids)
        if not ids:
            return
        self._statuses(ids)  # unknown jids raise, as for status()
        self.store.kill(self.tenant, ids)

    def delete(self, jids: Any) -> None:
        """Remove finished jobs' data; raises for unfinished or unknown jobs."""
        _, ids = jidlib.normalize(jids)
        self.store.delete(self.tenant, ids)
        self.hub.forget(ids)

    def close(self) -> bool:
        """Stop waiting threads and release the store and the mode; False if closed."""
        with self._lock:
            if self.closed:
                return False
            self.closed = True
        self.hub.close()
        if self._owns:
            self.mode.close()
            self.store.close()
        return True

    def connection_info(self) -> dict[str, Any]:
        """PiCloud's `connection_info()`: whether open, the mode and its details."""
        return {
            "opened": not self.closed,
            "connection_type": self.mode.name,
            **self.mode.describe(self.tenant),
        }
