"""Completion notices on Redis: a client's blocking pop, and its hold.

A client waiting for many jobs arms a hold first (``hold.lua``): the finishing scripts
then keep its 'done' notices on a side list until as many have come as it needs, or one
is a failure (``push_notices`` in ``lib.lua``). A map's `result` wakes its client a few
times instead of once per job, and the client's CPU stays off the vCPUs running the jobs.
A held pop is one round trip: arming, the blocking pop and the sweep of what came
travel in one pipeline (each request costs Redis and the client CPU that the jobs'
vCPUs pay for). The hold goes as EVAL, text included: were it sent by sha to a Redis
that lost its scripts, the pop behind it would block without the release of what an
earlier hold kept aside.

Nothing about a hold lives in the client or the gateway: a plain pop watches both lists,
so it gets every notice at once whatever holds another thread, process or gateway
replica armed, and a hold nobody renews expires by itself.
"""

from __future__ import annotations

from typing import cast

import msgpack

from picloud_compat.store import keys
from picloud_compat.store.records import Notice
from picloud_compat.store.redis import scripts
from picloud_compat.store.redis.arguments import HoldArgs
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import store_errors

POP_COUNT = 1000
"""Batches of notices taken per pop (a batch is one script run's notices for a client)."""
HOLD_OUTLIVES_POP = 1.0
"""Seconds a hold lasts beyond the pop that armed it: a client gone or no longer
waiting stops holding its notices back by itself."""


class RedisNotices(RedisBase):
    """`ClientStore.pop_notices` on Redis."""

    def pop_notices(self, t: str, cid: str, timeout: float, wanted: int = 1) -> list[Notice]:
        """Block up to `timeout` seconds for completion notices addressed to `cid`;
        with `wanted` > 1, until that many have come or one is not 'done'."""
        lists = [keys.notices(t, cid), keys.held_notices(t, cid)]
        if wanted > 1 and timeout > 0:
            return self._held_pop(t, cid, lists, timeout, wanted)
        with store_errors("waiting for results"):
            if timeout > 0:  # any notice, held for another waiter or not
                popped = self.redis.blmpop(timeout, 2, *lists, direction="LEFT", count=POP_COUNT)
            else:
                popped = self.redis.lmpop(2, *lists, direction="LEFT", count=POP_COUNT)
        return _unpacked(cast("list[bytes]", popped[1]) if popped else [])

    def _held_pop(
        self, t: str, cid: str, lists: list[str], timeout: float, wanted: int
    ) -> list[Notice]:
        """Arm the hold, block until it is released (or a failure, or the timeout), and
        sweep both lists for what came meanwhile: one pipeline, one round trip."""
        args = HoldArgs(
            tenant=t,
            cid=cid,
            wanted=wanted,
            ttl_ms=int((timeout + HOLD_OUTLIVES_POP) * 1000),
        )
        with store_errors("waiting for results"):
            pipe = self.redis.pipeline(transaction=False)
            scripts.queue_eval(pipe, self._scripts["hold"], args)
            pipe.blmpop(timeout, 1, lists[0], direction="LEFT", count=POP_COUNT)
            pipe.lmpop(2, *lists, direction="LEFT", count=POP_COUNT)
            _, popped, swept = pipe.execute()
        items = cast("list[bytes]", popped[1]) if popped else []
        if swept:
            items += cast("list[bytes]", swept[1])
        return _unpacked(items)


def _unpacked(items: list[bytes]) -> list[Notice]:
    notices: list[Notice] = []
    for raw in items:
        flat = msgpack.unpackb(raw, raw=True)
        for i in range(0, len(flat), 3):
            result = flat[i + 2]
            notices.append(Notice(int(flat[i]), flat[i + 1].decode(), result if result else None))
    return notices
