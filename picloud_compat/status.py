"""PiCloud's job statuses and the one table of allowed transitions.

Both stores enforce this table on every status change: the Lua scripts through a
table generated from it (``store/redis/scripts.py``), the memory store in
`MemoryState._move`. The store contract suite asserts that refused moves never happen.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A job's status, as PiCloud spelled it (a StrEnum, so it compares to str)."""

    WAITING = "waiting"  # dependencies not yet satisfied
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    ERROR = "error"
    KILLED = "killed"
    STALLED = "stalled"  # a dependency errored, was killed or stalled

    @property
    def finished(self) -> bool:
        """Whether the job is over (it will not change status again)."""
        return self in FINISHED


FINISHED = frozenset({JobStatus.DONE, JobStatus.ERROR, JobStatus.KILLED, JobStatus.STALLED})
FAILED = frozenset({JobStatus.ERROR, JobStatus.KILLED, JobStatus.STALLED})

# PiCloud's public constant, in its original order.
finished_statuses = ["done", "stalled", "error", "killed"]

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING: frozenset({JobStatus.QUEUED, JobStatus.STALLED, JobStatus.KILLED}),
    # queued -> error is a deactivated key's job, failed instead of run
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.KILLED, JobStatus.ERROR}),
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


_MOVES = frozenset((str(a), str(b)) for a, targets in TRANSITIONS.items() for b in targets)


def can_move(current: str, new: str) -> bool:
    """Whether a job may go from status `current` to `new` (a set lookup: the memory
    store asks on every status change); ValueError for a name that is no status."""
    if (current, new) in _MOVES:
        return True
    JobStatus(current), JobStatus(new)  # unknown names raise ValueError
    return False
