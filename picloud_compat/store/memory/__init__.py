"""`MemoryStore`: the store of the simulator and ``cloud.mp``, in one process.

One class made of four mixins over the shared state in `state.py`, the same cut as
`RedisStore`'s (`jobs`, `reads`, `supervision`, `records`). It mirrors the Lua scripts
of `RedisStore` step for step, and also holds the queue the simulator's job processes
pull chunks from.
"""

from __future__ import annotations

from picloud_compat.store.memory.jobs import MemoryJobs
from picloud_compat.store.memory.reads import MemoryReads
from picloud_compat.store.memory.records import MemoryRecords
from picloud_compat.store.memory.state import IllegalMove
from picloud_compat.store.memory.supervision import MemorySupervision

__all__ = ["IllegalMove", "MemoryStore"]


class MemoryStore(MemoryJobs, MemoryReads, MemorySupervision, MemoryRecords):
    """Every role of the store contract, in this process's memory."""
