"""Job cards (`_repr_html_`) against a fake store: escaping, failures of the store, and
the bounded read of a long list's statuses."""

from __future__ import annotations

import pickle
import re
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from picloud_compat.client import cards
from picloud_compat.client.handles import JobId, JobList
from picloud_compat.errors import ConnectionFailed
from picloud_compat.jobspec import JobSpec

HOSTILE = '<script>alert("x")</script>'


class FakeStore:
    """Answers from dicts; counts what it is asked."""

    def __init__(self, entries: dict[int, dict[str, object]] | None = None) -> None:
        self.entries = entries or {}
        self.results_by_jid: dict[int, bytes] = {}
        self.asked: list[int] = []  # how many statuses each statuses() call read
        self.failure: Exception | None = None
        self.hang = threading.Event()
        self.hanging = False

    def _maybe_fail(self) -> None:
        if self.hanging:
            self.hang.wait(10)
        if self.failure is not None:
            raise self.failure

    def info(self, t: str, jids: list[int], fields: list[str]) -> list[dict[str, object] | None]:
        self._maybe_fail()
        return [self.entries.get(j) for j in jids]

    def results(self, t: str, jids: list[int]) -> list[bytes | None]:
        self._maybe_fail()
        return [self.results_by_jid.get(j) for j in jids]

    def spec(self, t: str, spec_id: str) -> str | None:
        return None

    def statuses(self, t: str, jids: list[int]) -> list[str | None]:
        self._maybe_fail()
        self.asked.append(len(jids))
        return [self.status_of(j) for j in jids]

    def status_of(self, jid: int) -> str | None:
        entry = self.entries.get(jid)
        return None if entry is None else str(entry["status"])


def client(store: FakeStore) -> Any:
    return SimpleNamespace(
        store=store, tenant="t", closed=False, codec=SimpleNamespace(load=pickle.loads)
    )


def spec(name: str = "square", label: str | None = None) -> JobSpec:
    return JobSpec(name=name, label=label)


def test_a_done_job_shows_its_status_function_label_runtime_and_result() -> None:
    store = FakeStore({7: {"status": "done", "runtime": 1.5}})
    store.results_by_jid[7] = pickle.dumps({"answer": 42})
    html = JobId(7, client(store), spec("square", "first"))._repr_html_()
    assert "job 7" in html and ">done</span>" in html and "<code>square</code>" in html
    assert "[first]" in html and "1.5 s" in html and "{&#x27;answer&#x27;: 42}" in html


def test_everything_from_the_job_is_escaped() -> None:
    store = FakeStore(
        {
            1: {"status": "done", "runtime": 0.0001},
            2: {"status": "error", "exception": f"Traceback ...\nValueError: {HOSTILE}\n"},
        }
    )
    store.results_by_jid[1] = pickle.dumps(HOSTILE)
    for jid in (1, 2):
        html = JobId(jid, client(store), spec(HOSTILE, HOSTILE))._repr_html_()
        assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;1 ms" in JobId(1, client(store))._repr_html_()  # even our own text
    error = JobId(2, client(store), spec())._repr_html_()
    assert ">error</span>" in error and "ValueError: &lt;script&gt;" in error


def test_a_failed_store_a_hung_store_and_a_deleted_job_show_in_the_card(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FakeStore()
    assert "not found" in JobId(3, client(store), spec())._repr_html_()
    store.failure = ConnectionFailed("cannot reach the gateway <b>")
    html = JobId(3, client(store), spec())._repr_html_()
    assert "cannot read the job: ConnectionFailed" in html and "&lt;b&gt;" in html
    assert "cannot read the jobs" in JobList([3, 4], client(store))._repr_html_()
    monkeypatch.setattr(cards, "DEADLINE", 0.3)
    store.hanging = True
    started = time.monotonic()
    assert "did not answer within 0.3 s" in JobId(3, client(store), spec())._repr_html_()
    assert "did not answer" in JobList([3], client(store))._repr_html_()
    assert time.monotonic() - started < 2
    store.hanging = False
    store.hang.set()
    closed = client(store)
    closed.closed = True
    assert "closed" in JobId(3, closed, spec())._repr_html_()


def test_results_too_big_or_not_loadable_are_not_shown() -> None:
    store = FakeStore({1: {"status": "done"}, 2: {"status": "done"}, 3: {"status": "done"}})
    store.results_by_jid[1] = b"x" * (cards.PREVIEW_BYTES + 1)
    store.results_by_jid[2] = b"not a pickle"
    assert "(not previewed)" in JobId(1, client(store), spec())._repr_html_()
    assert "cannot be loaded here: UnpicklingError" in JobId(2, client(store))._repr_html_()
    assert "no longer stored" in JobId(3, client(store))._repr_html_()


def counts(html: str) -> dict[str, str]:
    return dict(
        re.findall(r"</span> (done|failed|running|queued|not found) (≈?[\d,]+)</span>", html)
    )


def test_a_short_list_is_counted_exactly() -> None:
    statuses = ["done", "done", "error", "killed", "processing", "queued", "waiting", "stalled"]
    store = FakeStore({i + 1: {"status": s} for i, s in enumerate(statuses)})
    html = JobList(range(1, 10), client(store), spec("square"))._repr_html_()
    assert counts(html) == {
        "done": "2",
        "failed": "3",
        "running": "1",
        "queued": "2",
        "not found": "1",
    }
    assert "9 jobs" in html and "<code>square</code>" in html and "(4 more)" in html
    assert "estimated" not in html and store.asked == [9]


def test_a_million_jids_read_a_bounded_even_sample_in_well_under_a_second() -> None:
    class Progressing(FakeStore):
        def status_of(self, jid: int) -> str | None:
            if jid % 1000 == 0:
                return "error"
            return "done" if jid <= 300_000 else "processing" if jid <= 310_000 else "queued"

    store = Progressing()
    big = JobList(range(1, 1_000_001), client(store))
    started = time.monotonic()
    html = big._repr_html_()
    assert time.monotonic() - started < 1.0
    assert store.asked == [cards.SAMPLE + cards.HEAD]  # one bounded read
    found = {k: int(v.lstrip("≈").replace(",", "")) for k, v in counts(html).items()}
    expected = {"done": 299_700, "failed": 1000, "running": 9_990, "queued": 689_310}
    for group, n in expected.items():
        assert abs(found[group] - n) <= 2_000, (group, found[group])
    assert "1,000,000 jobs" in html and "estimated from 10,000 evenly spaced jobs" in html
    assert "(999,995 more)" in html


def test_an_empty_list_reads_nothing() -> None:
    store = FakeStore()
    assert "0 jobs" in JobList([], client(store))._repr_html_() and store.asked == []
