"""Jobs and job lists as Jupyter cards (`_repr_html_`), read from each mode's store, while
their text forms and their use as jids stay those of PiCloud's int and list."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

GROUP = {"done": "done", "error": "failed", "processing": "running", "queued": "queued"}


def _greet(name):
    return f"<hello {name}>"


def _refuse(name):
    raise ValueError(f"bad <{name}>")


def _kinds(one, many):
    """What a job receives for a jid and a jid list passed as arguments."""
    return type(one).__name__, one, type(many).__name__, many


def _told(folder, index):
    """Wait until the test writes this job's word into `folder`: "fail" raises."""
    path = os.path.join(folder, str(index))
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                if f.read() == "fail":
                    raise ValueError("told to fail")
            return index
        time.sleep(0.05)
    raise TimeoutError("never told")


def _tell(folder: Path, index: int, word: str) -> None:
    (folder / f".{index}").write_text(word)
    os.replace(folder / f".{index}", folder / str(index))


def _until(condition, what: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_done_and_failed_jobs_show_status_function_label_and_outcome(cloud) -> None:  # type: ignore[no-untyped-def]
    done = cloud.call(_greet, "you", _label="card<test>")
    failed = cloud.call(_refuse, "input")
    cloud.join([done, failed], timeout=60, ignore_errors=True)

    html = done._repr_html_()
    assert f"job {done}" in html and ">done</span>" in html
    assert "test_rich_display._greet</code>" in html and "[card&lt;test&gt;]" in html
    assert "<code>&#x27;&lt;hello you&gt;&#x27;</code>" in html  # the result, escaped
    assert re.search(r">(\d+ ms|&lt;1 ms|[\d.]+ s)</span>", html)  # its runtime

    html = failed._repr_html_()
    assert ">error</span>" in html and "test_rich_display._refuse</code>" in html
    assert "<code>ValueError: bad &lt;input&gt;</code>" in html
    assert "<input>" not in html

    # the text forms and the jid behaviour are PiCloud's
    assert (repr(done), str(done), json.dumps(done)) == (str(int(done)),) * 3
    assert cloud.status(done) == "done" and cloud.info(done, "label")[done]["label"] == "card<test>"
    cloud.delete(done)
    assert "not found" in done._repr_html_()


def test_a_list_counts_done_failed_running_and_queued(cloud, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    count = 8  # more than the two processes of every mode's pool: some stay queued
    jids = cloud.map(_told, [str(tmp_path)] * count, range(count))
    assert repr(jids) == repr(list(jids)) and json.dumps(jids) == json.dumps(list(jids))
    try:
        running = _until(
            lambda: [j for j, s in zip(jids, cloud.status(jids), strict=True) if s == "processing"],
            "a running job",
        )
        _tell(tmp_path, jids.index(running[0]), "ok")
        _until(lambda: cloud.status(running[0]) == "done", "the first job to finish")
        others = _until(
            lambda: [
                j
                for j, s in zip(jids, cloud.status(jids), strict=True)
                if s == "processing" and j != running[0]
            ],
            "a second running job",
        )
        _tell(tmp_path, jids.index(others[0]), "fail")
        _until(lambda: cloud.status(others[0]) == "error", "the second job to fail")
        for _ in range(50):  # a moment when no job changes status around the card's read
            before = cloud.status(jids)
            html = jids._repr_html_()
            if cloud.status(jids) == before and "processing" in before:
                break
        counts = Counter(GROUP[s] for s in before)
        assert counts["done"] == counts["failed"] == 1 and counts["running"] >= 1
        assert counts["queued"] >= 1
        for group in ("done", "failed", "running", "queued"):
            assert f"</span> {group} {counts[group]}</span>" in html, (group, counts, html)
        assert f"{count} jobs" in html and "test_rich_display._told</code>" in html
        assert f"{jids[0]}</span>" in html and f"({count - 5} more)" in html
    finally:
        for index in range(count):
            _tell(tmp_path, index, "ok")
        cloud.join(jids, timeout=90, ignore_errors=True)
    html = jids._repr_html_()
    assert "</span> done 7</span>" in html and "</span> failed 1</span>" in html


def test_jids_and_lists_reach_jobs_and_api_functions_as_plain_values(cloud) -> None:  # type: ignore[no-untyped-def]
    first = cloud.call(_greet, "a")
    many = cloud.map(_greet, ["b", "c"], _depends_on=first)
    kinds = cloud.call(_kinds, first, many, _depends_on=many)
    assert cloud.result(kinds, timeout=60) == ("int", first, "list", list(many))
    assert cloud.status(many) == ["done", "done"] and cloud.result(many) == [
        "<hello b>",
        "<hello c>",
    ]
    assert sorted(cloud.info([first, *many], "status")) == [first, *many]
    cloud.join(many[0:1])
    cloud.kill(many)
    cloud.delete(many)
    assert "0 jobs" in cloud.map(_greet, [])._repr_html_()
