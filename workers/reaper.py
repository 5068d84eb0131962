"""The reaper: makes sure no job stays `queued` or `processing` forever.

Celery (with or without ack emulation) loses started and prefetched messages when a
whole worker is SIGKILLed (feasibility.md T2). Every published chunk is in the job
store's ledger until all its jobs finish, and every running chunk has a lease that its
worker's warden renews. One reaper pass (in any worker, under a short lock):

1. chunks whose lease lapsed: the worker is gone; recover them (restartable jobs are
   requeued up to the attempt cap, the others fail with "worker lost") and republish;
2. chunks published long ago that are neither leased nor in their queue (checked with
   LPOS twice, some seconds apart): the message was lost in a dead worker's hands;
   republish them.
"""

from __future__ import annotations

import logging

from picloud_compat import keys, messages
from picloud_compat.store.base import ChunkRef
from picloud_compat.store.redis_store import RedisJobStore

log = logging.getLogger("picloud.reaper")

ORPHAN_CONFIRM = 4.0
"""A suspected orphan (see `Settings.orphan_seconds`) is republished only if it is still
missing this much later, so a message in transit to a live worker is never doubled."""
ORPHANS_PER_PASS = 200


def reap(store: RedisJobStore, now: float) -> None:
    r = store.redis
    if not r.set(keys.REAPER_LOCK, "1", nx=True, px=1500):
        return
    leases = store.leases()
    for member, until in leases.items():
        if until < now:
            ck, _, worker = member.partition("|")
            loss = store.recover(
                ChunkRef(*keys.parse_chunk_key(ck)),
                worker,
                "worker lost: its lease expired (the worker died or lost Redis)",
            )
            log.warning("recovered chunk %s from %s: %s", ck, worker, loss)
    _republish_orphans(store, {m.partition("|")[0] for m in leases}, now)


def _republish_orphans(store: RedisJobStore, held: set[str], now: float) -> None:
    r = store.redis
    old = r.zrangebyscore(
        keys.LEDGER_TIMES,
        "-inf",
        now - store.settings.orphan_seconds,
        start=0,
        num=ORPHANS_PER_PASS,
    )
    suspects = {k.decode(): float(v) for k, v in r.hgetall(keys.ORPHAN_SUSPECTS).items()}
    for raw in old:
        ck = raw.decode()
        entry = r.hget(keys.LEDGER, ck)
        if entry is None or ck in held:
            r.zadd(keys.LEDGER_TIMES, {ck: now}, xx=True)
            r.hdel(keys.ORPHAN_SUSPECTS, ck)
            continue
        import msgpack

        queue, tpl, gen, _ = msgpack.unpackb(entry, raw=True)
        message = tpl.decode().replace(messages.TAG, messages.delivery_tag(ck, int(gen)))
        # The oldest messages sit at the tail (LPUSH in, BRPOP out): search from there.
        if r.lpos(queue, message, rank=-1) is not None:
            r.zadd(keys.LEDGER_TIMES, {ck: now}, xx=True)  # waiting its turn; look later
            r.hdel(keys.ORPHAN_SUSPECTS, ck)
        elif ck in suspects and now - suspects[ck] >= ORPHAN_CONFIRM:
            r.hdel(keys.ORPHAN_SUSPECTS, ck)
            loss = store.recover(ChunkRef(*keys.parse_chunk_key(ck)), "", "orphaned chunk")
            log.warning("chunk %s was lost in delivery; %s", ck, loss)
        elif ck not in suspects:
            r.hset(keys.ORPHAN_SUSPECTS, ck, now)
