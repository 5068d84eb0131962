"""`Client`: the logic behind every ``cloud.*`` function, for one tenant and one store.

The facade modules (``cloud``, ``cloud.mp``) are thin delegations to a `Client`. The
same class serves the cluster (a `RedisJobStore`) and the simulator (a
`MemoryJobStore` or its proxy inside simulator processes): the mode lives in the
store, never in ``if`` statements here.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from picloud_compat import jids as jidlib
from picloud_compat import options as opts
from picloud_compat.errors import (
    CloudException,
    CloudTimeoutError,
    ConnectionFailed,
    UnknownJobError,
)
from picloud_compat.execution import current_job
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.status import FAILED, FINISHED, KILLED_MESSAGE, STALLED_MESSAGE
from picloud_compat.store.base import JobStore, MissingFunction, Submission
from picloud_compat.waiting import RECHECK_EVERY, NoticeHub

DEFAULT_INFO = ["stdout", "stderr", "status", "runtime"]
ALL_INFO = [
    "status",
    "stdout",
    "stderr",
    "runtime",
    "exception",
    "created",
    "finished",
    "label",
    "function",
    "type",
    "priority",
    "cores",
    "attempts",
    "worker",
    "profile",
    "depends_on",
    "env",
    "vol",
    "parent",
]
MAX_CHUNK_JOBS = 256
MAX_CHUNK_BYTES = 8 * 1024 * 1024


class Client:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        tenant: str,
        *,
        connection_type: str,
        concurrency: Callable[[str], int],
        owner: Any = None,
        notices: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tenant = tenant
        self.connection_type = connection_type
        self._concurrency = concurrency
        self._owner = owner  # keeps a simulator alive as long as its client
        # Without notices (a server such as the gateway, which never waits on jobs) the
        # store pushes nothing for this client, so nothing piles up for it.
        self.cid = secrets.token_hex(8) if notices else ""
        self.codec = Codec(Signer(settings.signing_key or "", tenant), settings.max_transmit_data)
        self.hub = NoticeHub(store, tenant, self.cid)
        self._mine = jidlib.RangeSet()
        self._watched: set[int] = set()
        self._stored_functions: set[str] = set()
        self._lock = threading.Lock()
        self.closed = False

    @classmethod
    def for_cluster(
        cls, settings: Settings, tenant: str, store: Any = None, notices: bool = True
    ) -> Client:
        from picloud_compat.cluster_info import cluster_concurrency
        from picloud_compat.store.redis_store import RedisJobStore

        redis_store = store or RedisJobStore.from_url(settings.server_url or "", settings)
        return cls(
            settings,
            redis_store,
            tenant,
            connection_type="redis",
            concurrency=lambda queue: cluster_concurrency(redis_store.redis, queue),
            notices=notices,
        )

    # -- submitting ----------------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        if not callable(func):
            raise TypeError(f"cloud.call first argument ({func!r}) is not callable")
        reserved, user_kwargs = opts.split_kwargs(kwargs)
        options, callbacks = opts.parse(reserved)
        _check_signature(func, args, user_kwargs)
        fn_sha, fn_blob = self.codec.function(func)
        self.codec.ship_argument_types(itertools.chain(args, user_kwargs.values()))
        blob = self.codec.arguments(args, user_kwargs, options.fast_serialization)
        jid = self._submit(_display_name(func), fn_sha, fn_blob, options, [blob], first=None)
        if callbacks:
            self.hub.add_callbacks([jid], callbacks)
        return jid

    def submit_stored(
        self,
        fn_sha: str,
        fn_blob: bytes,
        name: str,
        options: opts.SubmitOptions,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        extra: tuple[tuple[str, Any], ...] = (),
    ) -> int:
        """Submit an already-pickled function (crons, REST endpoints)."""
        blob = self.codec.arguments(args, kwargs, options.fast_serialization)
        return self._submit(name, fn_sha, fn_blob, options, [blob], first=None, extra=extra)

    def map(self, func: Callable[..., Any], *iterables: Any, **kwargs: Any) -> list[int]:
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
            return []
        fn_sha, fn_blob = self.codec.function(func)
        name = _display_name(func)
        fast = options.fast_serialization
        sizes = _plain_sizes(rows, self.settings.max_transmit_data)
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
            def serialize(index: int) -> bytes:
                return self.codec.arguments(rows[index], None, fast)

        first = self.store.allocate(self.tenant, len(rows))
        submitted = 0
        try:
            for start, end in self._chunks(sizes, options.type):
                chunk = [serialize(i) for i in range(start, end)]
                self._submit(name, fn_sha, fn_blob, options, chunk, first=first + start)
                submitted = end
        except ConnectionFailed as exc:
            if submitted:
                exc.parameter = (
                    f"{exc.parameter}; jobs {first}..{first + submitted - 1} were submitted, "
                    f"the remaining {len(rows) - submitted} were not"
                )
                exc.jid = list(range(first, first + submitted))
            raise
        jids = list(range(first, first + len(rows)))
        if callbacks:
            self.hub.add_callbacks(jids, callbacks)
        return jids

    def _chunks(self, sizes: list[int], queue: str) -> Iterator[tuple[int, int]]:
        """[start, end) ranges of ~N/(4 x cluster concurrency) jobs, capped in count and bytes."""
        count = len(sizes)
        size = max(1, min(MAX_CHUNK_JOBS, math.ceil(count / (4 * self._concurrency(queue)))))
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

    def _submit(
        self,
        name: str,
        fn_sha: str,
        fn_blob: bytes,
        options: opts.SubmitOptions,
        args: Sequence[bytes],
        first: int | None,
        extra: tuple[tuple[str, Any], ...] = (),
    ) -> int:
        options_json, options_id = opts.stored_form(options, fn_sha, name, extra)
        parent = current_job()
        sub = Submission(
            cid=self.cid,
            fn_sha=fn_sha,
            fn_blob=None if fn_sha in self._stored_functions else fn_blob,
            options_id=options_id,
            options_json=options_json,
            queue=options.type,
            priority=options.priority,
            depends_on=options.depends_on,
            depends_on_errors=options.depends_on_errors,
            args=args,
            display_name=name,
            label=options.label,
            first=first,
            parent=parent.jid if parent and parent.tenant == self.tenant else None,
        )
        try:
            jid = self.store.submit(self.tenant, sub)
        except MissingFunction:  # it expired from the store since we last sent it
            sub.fn_blob = fn_blob
            jid = self.store.submit(self.tenant, sub)
        self._stored_functions.add(fn_sha)
        self._mine.add_range(jid, len(args))
        return jid

    # -- querying ------------------------------------------------------------------

    def status(self, jids: Any) -> str | list[str]:
        single, ids = jidlib.normalize(jids)
        statuses = self._statuses(ids)
        return statuses[0] if single else statuses

    def _statuses(self, ids: list[int]) -> list[str]:
        out = self.store.statuses(self.tenant, ids)
        for jid, st in zip(ids, out, strict=True):
            if st is None:
                raise UnknownJobError(jid)
        return out  # type: ignore[return-value]

    def info(self, jids: Any, info_requested: Any = None) -> dict[int, dict[str, Any]]:
        _, ids = jidlib.normalize(jids)
        fields = _info_fields(info_requested)
        from picloud_compat.info import build_info

        return build_info(self, ids, fields)

    def list_jobs(self, label: str | None = None, status: str | None = None) -> list[int]:
        """Jids of this API key's jobs, optionally only those with a label / status."""
        labels: dict[str, str | None] = {}
        out = []
        for jid, st, oid in self.store.jobs(self.tenant):
            if status is not None and st != status:
                continue
            if label is not None:
                if oid not in labels:
                    raw = self.store.options(self.tenant, oid)
                    labels[oid] = json.loads(raw).get("label") if raw else None
                if labels[oid] != label:
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
        _, ids = jidlib.normalize(jids)
        self._wait(ids, timeout, ignore_errors, "cloud.join timed out")

    def _wait(
        self, ids: list[int], timeout: float | None, ignore_errors: bool, timeout_message: str
    ) -> dict[int, str]:
        """Wait until every jid finished; raise the first failure unless ignore_errors."""
        deadline = None if not timeout else time.monotonic() + timeout
        statuses: dict[int, str] = {}
        pending = set(ids)
        self._resolve_known(pending, statuses)
        self._watch_foreign(pending, statuses)
        last_check = time.monotonic()
        from picloud_compat.helping import helper

        assist = helper()
        while True:
            if not ignore_errors:
                failed = [j for j in ids if statuses.get(j) in FAILED]
                if failed:
                    raise self._failure(failed[0], statuses[failed[0]])
            if not pending:
                return statuses
            if deadline is not None and time.monotonic() >= deadline:
                raise CloudTimeoutError(timeout_message, jid=sorted(pending))
            if assist is not None and assist.help(self, pending):
                self._resolve_known(pending, statuses)
                continue
            slice_end = time.monotonic() + RECHECK_EVERY
            if assist is not None:
                slice_end = time.monotonic() + 0.05
            until = slice_end if deadline is None else min(deadline, slice_end)
            self.hub.wait_any(pending, until)
            self._resolve_known(pending, statuses)
            due = time.monotonic() - last_check >= RECHECK_EVERY or self.hub.recheck_all
            if pending and due:
                self.hub.recheck_all = False
                last_check = time.monotonic()
                self.hub.recheck(pending)
                self._resolve_known(pending, statuses)

    def _resolve_known(self, pending: set[int], statuses: dict[int, str]) -> None:
        for jid in list(pending):
            st = self.hub.finished_status(jid)
            if st is not None:
                statuses[jid] = st
                pending.discard(jid)

    def _watch_foreign(self, pending: set[int], statuses: dict[int, str]) -> None:
        """Jobs this client did not submit: register for notices, atomically."""
        foreign = sorted(j for j in pending if j not in self._mine and j not in self._watched)
        if not foreign:
            return
        current = self.store.watch(self.tenant, self.cid, foreign)
        finished = {}
        for jid, st in zip(foreign, current, strict=True):
            if st is None:
                raise UnknownJobError(jid)
            self._watched.add(jid)
            if st in FINISHED:
                finished[jid] = st
        if finished:
            self.hub.mark_finished(finished)
            self._resolve_known(pending, statuses)

    def failure(self, jid: int, status: str) -> CloudException:
        """The CloudException PiCloud raised for a job that finished `status`."""
        return self._failure(jid, status)

    def finished_results(self, jids: list[int]) -> list[Any]:
        """Values (or CloudExceptions) of jobs known to be finished, without waiting."""
        statuses = dict(zip(jids, self._statuses(jids), strict=True))
        return self._collect(jids, statuses)

    def _failure(self, jid: int, status: str) -> CloudException:
        text = None
        if status in ("error", "killed"):
            entry = self.store.info(self.tenant, [jid], ["exception"])[0]
            text = entry.get("exception") if entry else None
        if status == "stalled":
            text = STALLED_MESSAGE
        if not text:
            text = KILLED_MESSAGE if status == "killed" else "unknown error"
        return CloudException(text, jid=jid, status=status)

    def result(
        self,
        jids: Any,
        timeout: float | None = None,
        ignore_errors: bool = False,
        deadlock_check: bool = True,
    ) -> Any:
        single, ids = jidlib.normalize(jids)
        if not ids:
            return []
        statuses = self._wait(ids, timeout, ignore_errors, "cloud.result timed out")
        values = self._collect(ids, statuses)
        return values[0] if single else values

    def _collect(self, ids: list[int], statuses: dict[int, str]) -> list[Any]:
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
            for jid, blob in zip(unique, self.store.results(self.tenant, unique), strict=True):
                blobs[jid] = blob
        out = []
        for jid in ids:
            st = statuses[jid]
            if st != "done":
                out.append(self._failure(jid, st))
                continue
            blob = blobs.get(jid)
            if blob is None:
                raise UnknownJobError(jid)  # deleted between finishing and reading
            out.append(self.codec.load(blob))
        return out

    def iresult(
        self,
        jids: Any,
        timeout: float | None = None,
        num_in_parallel: int = 10,
        ignore_errors: bool = False,
    ) -> Iterator[Any]:
        from picloud_compat.iresult import ResultIterator

        _, ids = jidlib.normalize(jids)
        return ResultIterator(self, ids, timeout, num_in_parallel, ignore_errors)

    # -- services ------------------------------------------------------------------

    @functools.cached_property
    def files(self) -> Any:
        """This tenant's `FileStore`: S3 on a cluster, a local directory when simulated."""
        if self.connection_type == "redis":
            from picloud_compat.files.s3 import S3FileStore

            return S3FileStore(self.settings, self.tenant)
        from pathlib import Path

        from picloud_compat.files.local import LocalFileStore
        from picloud_compat.settings import getconfigpath

        root = self.settings.files_dir or str(Path(getconfigpath()) / "files")
        return LocalFileStore(Path(root), self.tenant)

    # -- control -------------------------------------------------------------------

    def kill(self, jids: Any = None) -> None:
        if jids is None:
            self.store.kill(self.tenant, None)
            return
        _, ids = jidlib.normalize(jids)
        if not ids:
            return
        self._statuses(ids)  # unknown jids raise, as for status()
        self.store.kill(self.tenant, ids)

    def delete(self, jids: Any) -> None:
        _, ids = jidlib.normalize(jids)
        self.store.delete(self.tenant, ids)
        self.hub.forget(ids)

    def close(self) -> bool:
        with self._lock:
            if self.closed:
                return False
            self.closed = True
        self.hub.close()
        closer = getattr(self._owner, "close", None) or getattr(self.store, "close", None)
        if closer is not None:
            closer()
        return True

    def connection_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"opened": not self.closed, "connection_type": self.connection_type}
        if self.connection_type == "redis":
            info.update(server_url=_redact(self.settings.server_url), api_key=self.tenant)
        else:
            info["num_procs"] = self.settings.processes
        return info


_PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})


def _plain_sizes(rows: list[tuple[Any, ...]], limit: int) -> list[int] | None:
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


def _display_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        name = type(func).__name__
    module = getattr(func, "__module__", None)
    return name if module in (None, "__main__") else f"{module}.{name}"


@functools.lru_cache(maxsize=256)
def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None  # builtins and some callables have no inspectable signature


def _check_signature(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
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
        raise TypeError(f"{_display_name(func)}() {exc}") from None


def _info_fields(requested: Any) -> list[str]:
    if requested is None:
        return list(DEFAULT_INFO)
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, list | tuple):
        raise TypeError(f"info_requested must be a string or a list of strings, got {requested!r}")
    fields: list[str] = []
    for f in requested:
        if not isinstance(f, str):
            raise TypeError(f"info_requested items must be strings, got {f!r}")
        fields.extend(ALL_INFO if f == "all" else [f])
    unknown = [f for f in fields if f not in ALL_INFO]
    if unknown:
        raise ValueError(f"unknown info field(s) {unknown}; available: {', '.join(ALL_INFO)}")
    return list(dict.fromkeys(fields))


def _redact(url: str | None) -> str | None:
    if not url or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


# -- the default client ----------------------------------------------------------------

_client: Client | None = None
_client_lock = threading.RLock()
_job_client_factory: Callable[[str], Client] | None = None
_job_clients: dict[str, Client] = {}


def set_job_client_factory(factory: Callable[[str], Client] | None) -> None:
    """Installed by workers: jobs calling `cloud.*` get a client for their tenant."""
    global _job_client_factory
    _job_client_factory = factory
    _job_clients.clear()


def get_client() -> Client:
    job = current_job()
    if job is not None and _job_client_factory is not None:
        client = _job_clients.get(job.tenant)
        if client is None:
            client = _job_clients[job.tenant] = _job_client_factory(job.tenant)
        return client
    global _client
    with _client_lock:
        if _client is None or _client.closed:
            _client = _default_client()
        return _client


def set_client(client: Client | None) -> Client | None:
    """Replace the default client; returns the previous one (not closed)."""
    global _client
    with _client_lock:
        previous, _client = _client, client
        return previous


def peek_client() -> Client | None:
    return _client


def _default_client() -> Client:
    from picloud_compat import logs

    settings = Settings.load()
    logs.configure(settings)
    if settings.simulated:
        from picloud_compat.simulator import start_local_client

        return start_local_client(settings, connection_type="simulation")
    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.tenancy import tenant_for

    client = Client.for_cluster(settings, tenant_for(settings))
    try:
        AccountRegistry(client.store.redis, settings).authenticate(  # type: ignore[attr-defined]
            client.tenant, settings.api_secretkey
        )
    except BaseException:
        client.close()
        raise
    return client
