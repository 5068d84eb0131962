"""PiCloud compute types: each one is its own Celery queue.

Ops start one worker pool per type (``picloud worker --type c2`` or
``celery -A picloud_compat.tasks.app worker -Q c2``); a job's ``_type`` picks the queue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComputeType:
    """A PiCloud compute type (`_type`), served by its own worker pool."""

    name: str
    description: str
    cores: tuple[int, ...]  # the values `_cores` may take on this type
    memory_mb: int  # each job's memory limit (ops override it with `memory_limits`)

    @property
    def queue(self) -> str:
        """The Celery queue jobs of this type go to."""
        return self.name


COMPUTE_TYPES: dict[str, ComputeType] = {
    t.name: t
    for t in (
        ComputeType("c1", "1 compute unit, 300 MB RAM", (1,), 300),
        ComputeType("c2", "2.5 compute units, 800 MB RAM", (1, 2, 4, 8), 800),
        ComputeType("f2", "5.5 compute units, 3.75 GB RAM", (1, 2, 4, 8, 16), 3840),
        ComputeType("m1", "3.25 compute units, 8 GB RAM", (1, 2, 4, 8), 8192),
        ComputeType("s1", "up to 2 compute units, 300 MB RAM, 1 IP per core", (1,), 300),
    )
}

DEFAULT_TYPE = "c1"


def memory_limit_mb(compute_type: str, overrides: str = "") -> int:
    """A job's memory limit on `compute_type`: ``overrides`` ("c1=300,c2=800", from the
    ``memory_limits`` setting) first, else the type's own. ValueError naming a bad entry."""
    for entry in filter(None, (e.strip() for e in overrides.split(","))):
        name, _, value = entry.partition("=")
        if not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"memory_limits entry {entry!r} is not TYPE=MEGABYTES")
        if name.strip() == compute_type:
            return int(value)
    found = COMPUTE_TYPES.get(compute_type)
    return found.memory_mb if found else COMPUTE_TYPES[DEFAULT_TYPE].memory_mb


QUEUES = tuple(COMPUTE_TYPES)

# Redis has no native priorities: kombu keeps one list per priority step and reads them
# lowest-number first. PiCloud's `_priority` (lower runs first, default 5) maps onto it.
PRIORITY_STEPS = tuple(range(10))
DEFAULT_PRIORITY = 5
PRIORITY_SEP = ":"


def priority_step(priority: int) -> int:
    """`priority` clamped into the range of steps kombu keeps a list for."""
    return min(max(priority, PRIORITY_STEPS[0]), PRIORITY_STEPS[-1])


def queue_key(queue: str, priority: int) -> str:
    """The Redis list kombu reads for `queue` at `priority` (0 is the bare queue name)."""
    step = priority_step(priority)
    return queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}"


def queue_keys(queue: str) -> list[str]:
    """Every Redis list holding `queue`'s messages, highest priority first."""
    return [queue_key(queue, p) for p in PRIORITY_STEPS]
