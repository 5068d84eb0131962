"""`MemoryStore`: the store of the simulator and ``cloud.mp``, in one process.

One class made of one mixin per role (`store.contract`) over the shared state in
`state.py`; it mirrors the Lua scripts of `RedisStore` step for step, and also holds
the queue the simulator's worker processes pull chunks from.
"""

from __future__ import annotations

from picloud_compat.store.memory.client_side import MemoryClientSide
from picloud_compat.store.memory.records import MemoryRecords
from picloud_compat.store.memory.runner_side import MemoryRunnerSide
from picloud_compat.store.memory.state import IllegalMove
from picloud_compat.store.memory.supervision import MemorySupervision

__all__ = ["IllegalMove", "MemoryStore"]


class MemoryStore(MemoryClientSide, MemoryRunnerSide, MemorySupervision, MemoryRecords):
    """Every role of the store contract, in this process's memory."""
