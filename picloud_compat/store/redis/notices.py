"""Completion notices on Redis: a client's blocking pop, and its hold.

A client waiting for many jobs arms a hold first (``hold.lua``): the finishing scripts
then keep its 'done' notices on the side until as many have come as it needs, or one
is a failure (``push_notices`` in ``lib.lua``). A map's `result` wakes its client once
instead of once per job, and the client's CPU stays off the vCPUs running the jobs.
So a held pop is two round trips (three when it times out), not one.
"""

from __future__ import annotations

from typing import cast

import msgpack

from picloud_compat.store import keys
from picloud_compat.store.records import Notice
from picloud_compat.store.redis.arguments import HoldArgs
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import store_errors

POP_COUNT = 1000
"""Batches of notices taken per pop (a batch is one script run's notices for a client)."""
HOLD_OUTLIVES_POP = 1.0
"""Seconds a hold lasts beyond the pop that armed it: a client gone or no longer
waiting stops holding its notices back by itself."""
MAX_REMEMBERED_HOLDS = 100_000
"""Clients (tenant, cid) this process may have left a hold armed for. Beyond this the
memory is dropped: a forgotten hold expires by itself, and what it held is found by
the waiter's periodic status re-read."""


class RedisNotices(RedisBase):
    """`ClientStore.pop_notices` on Redis."""

    def pop_notices(self, t: str, cid: str, timeout: float, wanted: int = 1) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`;
        with `wanted` > 1, until that many have come or one is not 'done'."""
        holder = (t, cid)
        armed = holder in self._holds
        if wanted > 1 or armed:
            args = HoldArgs(
                tenant=t,
                cid=cid,
                wanted=wanted,
                ttl_ms=int((max(timeout, 0.0) + HOLD_OUTLIVES_POP) * 1000),
            )
            self._run("hold", args, what="waiting for results")
            if wanted > 1:
                if len(self._holds) >= MAX_REMEMBERED_HOLDS:
                    self._holds.clear()
                self._holds.add(holder)
            else:
                self._holds.discard(holder)
        key = keys.notices(t, cid)
        with store_errors("waiting for results"):
            # With a count, LPOP and BLMPOP reply with a list of values (or nil).
            if timeout <= 0:
                items = cast("list[bytes]", self.redis.lpop(key, POP_COUNT) or [])
            else:
                popped = self.redis.blmpop(
                    max(timeout, 0.001), 1, key, direction="LEFT", count=POP_COUNT
                )
                items = cast("list[bytes]", popped[1]) if popped else []
            if not items and wanted > 1:  # the time is up: what was held back is news too
                held = self.redis.lpop(keys.held_notices(t, cid), POP_COUNT)
                items = cast("list[bytes]", held or [])
        return _unpacked(items)


def _unpacked(items: list[bytes]) -> list[Notice]:
    notices: list[Notice] = []
    for raw in items:
        flat = msgpack.unpackb(raw, raw=True)
        for i in range(0, len(flat), 3):
            result = flat[i + 2]
            notices.append(Notice(int(flat[i]), flat[i + 1].decode(), result if result else None))
    return notices
