from __future__ import annotations

import itertools

import pytest

from picloud_compat.status import (
    FAILED,
    FINISHED,
    TRANSITIONS,
    JobStatus,
    can_move,
    finished_statuses,
)

ALLOWED = {
    ("waiting", "queued"),
    ("waiting", "stalled"),
    ("waiting", "killed"),
    ("queued", "processing"),
    ("queued", "killed"),
    ("queued", "error"),  # a deactivated key's queued job
    ("processing", "done"),
    ("processing", "error"),
    ("processing", "killed"),
    ("processing", "queued"),
}
NAMES = ["waiting", "queued", "processing", "done", "error", "killed", "stalled"]


def test_statuses_are_picloud_names() -> None:
    assert [s.value for s in JobStatus] == NAMES
    assert JobStatus("done") == "done"


@pytest.mark.parametrize(("current", "new"), list(itertools.product(NAMES, NAMES)))
def test_can_move_matches_picloud(current: str, new: str) -> None:
    assert can_move(current, new) is ((current, new) in ALLOWED)


def test_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(JobStatus)


@pytest.mark.parametrize("status", ["done", "error", "killed", "stalled"])
def test_finished_statuses_are_terminal(status: str) -> None:
    assert JobStatus(status).finished
    assert TRANSITIONS[JobStatus(status)] == frozenset()
    assert not any(can_move(status, new) for new in NAMES)


@pytest.mark.parametrize("status", ["waiting", "queued", "processing"])
def test_unfinished_statuses(status: str) -> None:
    assert not JobStatus(status).finished
    assert TRANSITIONS[JobStatus(status)]


def test_no_status_moves_to_itself() -> None:
    assert not any(can_move(s, s) for s in NAMES)


def test_public_constants() -> None:
    assert finished_statuses == ["done", "stalled", "error", "killed"]
    assert set(finished_statuses) == FINISHED
    assert FINISHED - {JobStatus.DONE} == FAILED


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        can_move("bogus", "done")
    with pytest.raises(ValueError):
        can_move("queued", "running")
