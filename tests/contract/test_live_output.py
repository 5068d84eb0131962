"""``cloud.enable_output()``: a job's output appears while it runs, prefixed by its jid."""

from __future__ import annotations

import io
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(120)


def _talks(seconds: float) -> str:
    print("starting", flush=True)
    time.sleep(seconds)
    print("halfway", flush=True)
    time.sleep(seconds)
    print("done", file=sys.stderr, flush=True)
    return "ok"


class Recorder(io.StringIO):
    """A stream that notes when each piece of text arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.arrivals.append((time.monotonic(), text))
        return super().write(text)


def test_output_streams_while_the_job_runs(cloud, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out, err = Recorder(), Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    jid = cloud.call(_talks, 1.5)
    with cloud.enable_output():
        assert cloud.result(jid, timeout=60) == "ok"
    finished = time.monotonic()
    first = next(t for t, text in out.arrivals if f"[{jid}] starting" in text)
    assert finished - first > 1.0  # shown while the job still ran
    assert f"[{jid}] halfway" in out.getvalue()
    assert f"[{jid}] done" in err.getvalue()  # stderr too, and nothing twice
    assert out.getvalue().count("starting") == 1


def test_without_it_nothing_is_printed(cloud, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    assert cloud.result(cloud.call(_talks, 0.1), timeout=60) == "ok"
    assert "starting" not in out.getvalue()
