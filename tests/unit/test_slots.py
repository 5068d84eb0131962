"""The worker's core slots, across real processes: all-or-nothing, released on death."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from picloud_compat.runner import slots
from picloud_compat.runner.slots import SlotLedger, holding

pytestmark = pytest.mark.timeout(60)
CTX = multiprocessing.get_context("fork")


def _wide_job(directory: str, cores: int, seconds: float, log: str) -> None:
    ledger = SlotLedger(Path(directory))
    ledger.enter_chunk()  # every process runs inside a chunk, holding one slot
    with holding(ledger, cores):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} start {time.time()}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} end {time.time()}\n")
    ledger.leave_chunk()


def test_two_processes_widening_at_once_never_deadlock_and_never_overlap(tmp_path: Path) -> None:
    slots.prepare(tmp_path, 2)
    log = tmp_path / "log"
    procs = [
        CTX.Process(target=_wide_job, args=(str(tmp_path), 2, 0.3, str(log))) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
        assert p.exitcode == 0, "a widening process deadlocked or failed"
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[1] for e in events] == ["start", "end", "start", "end"]
    assert events[0][0] == events[1][0]  # one ran entirely before the other


def test_a_killed_holder_gives_its_slots_back(tmp_path: Path) -> None:
    slots.prepare(tmp_path, 2)
    holder = CTX.Process(target=_wide_job, args=(str(tmp_path), 2, 60, str(tmp_path / "log")))
    holder.start()
    ledger = SlotLedger(tmp_path)
    deadline = time.time() + 10
    while not (tmp_path / "log").exists():
        assert time.time() < deadline
        time.sleep(0.01)
    # both slots are taken: a chunk cannot start until the holder dies
    started = CTX.Event()

    def enter() -> None:
        SlotLedger(tmp_path).enter_chunk()
        started.set()

    waiter = CTX.Process(target=enter)
    waiter.start()
    assert not started.wait(0.5)
    os.kill(holder.pid or 0, signal.SIGKILL)
    holder.join()
    assert started.wait(5), "the dead holder's slots were not released"
    waiter.join(5)
    ledger.close()


def test_a_ledger_without_slot_files_holds_nothing(tmp_path: Path) -> None:
    ledger = SlotLedger(tmp_path)
    assert ledger.count == 0
    ledger.enter_chunk()
    with holding(ledger, 8) as enough:
        assert enough  # nothing to count against: the job runs
    assert ledger.held == 0


def test_a_job_wider_than_the_worker_is_told_so(tmp_path: Path) -> None:
    slots.prepare(tmp_path, 2)
    ledger = SlotLedger(tmp_path)
    ledger.enter_chunk()
    with holding(ledger, 4) as enough:
        assert not enough
        assert ledger.held == 1
    with pytest.raises(ValueError, match="needs 4 cores; this worker has 2"):
        ledger.widen(4)
    ledger.close()
