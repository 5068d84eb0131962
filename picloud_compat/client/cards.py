"""What Jupyter shows for a `JobId` or a `JobList`: the store's state when drawn.

A card is read when IPython asks for it (`_repr_html_`), through one daemon thread with
a deadline (`DEADLINE`): an unreachable store or a slow gateway shows in the card
instead of hanging the cell, and nothing is raised. Everything taken from a job is
escaped (`card_html`).

A job's card costs one read of its record (its function name and label come from the
handle, known at submit), plus one of its result when it is done; a result over
`PREVIEW_BYTES` is not unpickled. A list's card reads at most `SAMPLE` statuses, in one
request: all of them up to that length; beyond it `SAMPLE` evenly spaced jids (plus the
first few, which are shown by number), whose counts are scaled to the list's length and
marked as estimates. Even spacing rather than a random sample: map jobs run roughly in
jid order, so it follows the progress, and a redrawn card does not jitter.
"""

from __future__ import annotations

import queue
import reprlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol, TypeVar

from picloud_compat.client.card_html import JobView, ListView, job_html, list_html
from picloud_compat.client.info import job_runtime
from picloud_compat.jobspec import JobSpec
from picloud_compat.status import FAILED, KILLED_MESSAGE, STALLED_MESSAGE

if TYPE_CHECKING:
    from picloud_compat.serialization import Codec
    from picloud_compat.store.contract import ClientStore


class CardSource(Protocol):
    """What a card reads through: a client (`Client` is one), named by its parts so this
    module need not know the client that makes the handles."""

    @property
    def store(self) -> ClientStore: ...

    @property
    def tenant(self) -> str: ...

    @property
    def codec(self) -> Codec: ...

    @property
    def closed(self) -> bool: ...


def _no_source() -> CardSource | None:
    return None


current_source: Callable[[], CardSource | None] = _no_source
"""The process's current client, for a handle made without one (`session` sets this)."""

DEADLINE = 2.0
"""Seconds a card waits for the store before it says the store did not answer."""
SAMPLE = 10_000
"""Statuses a list's card reads at most (one request: ~0.1 s on every transport)."""
HEAD = 5
"""Jids a list's card shows by number."""
PREVIEW_BYTES = 1 << 20
"""A done job's result is unpickled for its card only up to this size."""
PREVIEW_CHARS = 120

_JOB_FIELDS = ["status", "runtime", "started", "exception", "spec"]
T = TypeVar("T")


def job_card(jid: int, client: CardSource | None, spec: JobSpec | None) -> str:
    """The HTML card of job `jid` (made by `client`; None: the current client's)."""
    try:
        found = _connected(client)
        if isinstance(found, str):
            view = JobView(jid, note=found)
        else:
            view = _READER.run(lambda: _read_job(found, jid, spec), DEADLINE)
    except TimeoutError:
        view = JobView(jid, note=f"the job store did not answer within {DEADLINE:g} s")
    except Exception as exc:
        view = JobView(jid, note=f"cannot read the job: {one_line(exc)}")
    return job_html(view)


def list_card(jids: Sequence[int], client: CardSource | None, spec: JobSpec | None) -> str:
    """The HTML card of a list of jids: counts by status, a bar, the first jids."""
    total = len(jids)
    view = ListView(total, spec.name if spec else "", spec.label if spec else None)
    try:
        exact = total <= SAMPLE
        sample = list(jids) if exact else [jids[i * total // SAMPLE] for i in range(SAMPLE)]
        head = list(jids[:HEAD])
        asked = sample if exact else head + sample
        found = _connected(client)
        if isinstance(found, str):
            view.note = found
        elif total:
            statuses = _READER.run(lambda: found.store.statuses(found.tenant, asked), DEADLINE)
            view.head = list(zip(head, statuses[:HEAD], strict=True))
            view.count(statuses if exact else statuses[HEAD:], exact)
    except TimeoutError:
        view.note = f"the job store did not answer within {DEADLINE:g} s"
    except Exception as exc:
        view.note = f"cannot read the jobs: {one_line(exc)}"
    return list_html(view)


def _connected(client: CardSource | None) -> CardSource | str:
    """The client to read through, or why there is none."""
    if client is None:
        client = current_source()
        if client is None:
            return "not connected: no job has been submitted in this process"
    if client.closed:
        return "the connection that submitted it is closed (cloud.close())"
    return client


def _read_job(client: CardSource, jid: int, spec: JobSpec | None) -> JobView:
    entry = client.store.info(client.tenant, [jid], _JOB_FIELDS)[0]
    if entry is None:
        return JobView(jid, note="not found: deleted, or not a job of this API key")
    spec_id = entry.get("spec")
    if spec is None and isinstance(spec_id, str) and spec_id:
        raw = client.store.spec(client.tenant, spec_id)
        spec = JobSpec.from_json(raw) if raw else None
    status = str(entry.get("status"))
    view = JobView(jid, status, spec.name if spec else "", spec.label if spec else None)
    view.runtime = job_runtime(entry)
    if status == "done":
        view.outcome, view.note = _preview(client, jid)
    elif status in FAILED:
        text = entry.get("exception")
        fallback = STALLED_MESSAGE if status == "stalled" else KILLED_MESSAGE
        view.outcome = last_line(text) if isinstance(text, str) and text.strip() else fallback
    return view


def _preview(client: CardSource, jid: int) -> tuple[str, str]:
    """(short repr of the result, or why there is none)."""
    blob = client.store.results(client.tenant, [jid])[0]
    if blob is None:
        return "", "its result is no longer stored"
    if len(blob) > PREVIEW_BYTES:
        return "", f"a result of {len(blob) / 1e6:.1f} MB (not previewed)"
    try:
        value = client.codec.load(blob)
    except Exception as exc:
        return "", f"its result cannot be loaded here: {one_line(exc)}"
    return short_repr(value), ""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, PREVIEW_CHARS, PREVIEW_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 8
_REPR.maxdict = 6


def short_repr(value: object) -> str:
    """One line of at most PREVIEW_CHARS (reprlib: a big container is not walked)."""
    text = " ".join(_REPR.repr(value).split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def last_line(text: str) -> str:
    """A traceback's last non-empty line: the exception itself."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for notes."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0][:200]}" if message else type(exc).__name__


class _Reader:
    """One daemon thread does every card's reads: a hung store blocks it, not the cell
    (a thread per card would also open a connection per card on per-thread transports)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._work: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = (
            queue.SimpleQueue()
        )

    def run(self, read: Callable[[], T], timeout: float) -> T:
        """`read()`'s value, or TimeoutError after `timeout` seconds (it is then dropped
        if not started, or finishes unobserved)."""
        future: Future[object] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._work = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._work,), name="picloud-cards", daemon=True
                )
                self._thread.start()
            self._work.put((read, future))
        try:
            return future.result(timeout)  # type: ignore[return-value]
        finally:
            future.cancel()

    @staticmethod
    def _serve(work: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]) -> None:
        while True:
            read, future = work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(read())
            except Exception as exc:
                future.set_exception(exc)
            except BaseException as exc:  # e.g. a result's __repr__ calling sys.exit
                future.set_exception(RuntimeError(one_line(exc)))


_READER = _Reader()
