"""PiCloud's job statuses and the one table of allowed transitions.

Both job stores (the Lua scripts and the in-memory store) implement exactly these
moves; `tests/unit/test_status.py` checks that each store refuses the others.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    WAITING = "waiting"  # dependencies not yet satisfied
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    ERROR = "error"
    KILLED = "killed"
    STALLED = "stalled"  # a dependency errored, was killed or stalled

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.DONE, JobStatus.ERROR, JobStatus.KILLED, JobStatus.STALLED})
FAILED = frozenset({JobStatus.ERROR, JobStatus.KILLED, JobStatus.STALLED})

# PiCloud's public constant, in its original order.
finished_statuses = ["done", "stalled", "error", "killed"]

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING: frozenset({JobStatus.QUEUED, JobStatus.STALLED, JobStatus.KILLED}),
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.KILLED}),
    # processing -> queued is a restartable job whose worker was lost
    JobStatus.PROCESSING: frozenset(
        {JobStatus.DONE, JobStatus.ERROR, JobStatus.KILLED, JobStatus.QUEUED}
    ),
    JobStatus.DONE: frozenset(),
    JobStatus.ERROR: frozenset(),
    JobStatus.KILLED: frozenset(),
    JobStatus.STALLED: frozenset(),
}

STALLED_MESSAGE = "Could not start due to dependency erroring"
KILLED_MESSAGE = "Killed"


def can_move(current: str, new: str) -> bool:
    return JobStatus(new) in TRANSITIONS[JobStatus(current)]
