"""`SupervisionStore` on Redis: kill requests, leases, recovery, reaping, heartbeats.

Celery (with or without ack emulation) loses started and prefetched messages when a
whole worker is SIGKILLed (feasibility.md T2). Every published chunk is in the
ledger until all its jobs finish, and every running chunk has a lease that its
worker's warden renews. One reaper pass (in any worker, under a short lock):

1. chunks whose lease lapsed: the worker is gone; recover them (restartable jobs are
   requeued up to the attempt cap, the others fail with "worker lost") and republish;
2. chunks published long ago that are neither leased nor in their queue (checked with
   LPOS twice, some seconds apart): the message was lost in a dead worker's hands;
   republish them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import cast

import msgpack

from picloud_compat import messages
from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef, KillRequest, WorkerInfo, WorkerLoss
from picloud_compat.store.redis.arguments import RecoverArgs
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import as_bytes, as_text, store_errors
from picloud_compat.store.redis.jobs import lease_member

ORPHAN_CONFIRM = 4.0
"""A suspected orphan (see `Settings.orphan_seconds`) is republished only if it is still
missing this much later, so a message in transit to a live worker is never doubled."""
ORPHANS_PER_PASS = 200
LEASE_LAPSED = "worker lost: its lease expired (the worker died or lost Redis)"


class RedisSupervision(RedisBase):
    """What wardens do; `reap` may run in any worker (a short lock picks one)."""

    def pop_kill_requests(self, warden: str, timeout: float) -> list[KillRequest]:
        """Kill requests for processes `warden` supervises."""
        key = keys.kill_queue(warden)
        with store_errors("waiting for kill requests"):
            if timeout <= 0:  # BLPOP's 0 would block forever: just look
                raw = cast("list[bytes]", self.redis.lpop(key, 100) or [])
            else:
                popped = self.redis.blpop([key], timeout=timeout)
                if not popped:
                    return []
                # BLPOP replies (key, value); LPOP with a count, a list of values (or nil).
                more = cast("list[bytes]", self.redis.lpop(key, 100) or [])
                raw = [as_bytes(popped[1]), *more]
        out = []
        for item in raw:
            t, jid, worker, token = msgpack.unpackb(item, raw=True)
            out.append(KillRequest(t.decode(), int(jid), worker.decode(), token.decode()))
        return out

    def renew_leases(self, chunks: Sequence[tuple[ChunkRef, str]], ttl: float) -> None:
        """Extend leases of chunks being run by (chunk, worker) pairs."""
        if not chunks:
            return
        until = time.time() + ttl
        with store_errors("renewing leases"):
            self.redis.hset(keys.LEASES, mapping={lease_member(c, w): until for c, w in chunks})

    def hand_back(self, chunk: ChunkRef, worker: str) -> WorkerLoss:
        """Republish what a draining runner left of `chunk` (see the contract)."""
        return self.recover(chunk, worker, "worker lost: it shut down mid-job")

    def recover(self, chunk: ChunkRef, dead_worker: str, reason: str) -> WorkerLoss:
        """Requeue or fail the jobs a dead worker held; republish the chunk."""
        s = self.settings
        record: RecoverArgs = {
            "tenant": chunk.tenant,
            "first": chunk.first,
            "count": chunk.count,
            "now": time.time(),
            "dead": dead_worker,
            "max_attempts": s.max_attempts,
            "reason": reason,
            "retention": s.retention_seconds,
            "inline_limit": s.inline_result_limit,
            "lease": lease_member(chunk, dead_worker) if dead_worker else "",
        }
        reply = self._run("recover", record, (), "recovering a lost worker's jobs")
        return WorkerLoss(int(reply[0]), int(reply[1]), bool(int(reply[2])))

    def recover_worker(self, dead_worker: str, reason: str) -> WorkerLoss:
        """Recover every chunk leased by a dead job process."""
        total = WorkerLoss()
        for member in self.leases():
            ck, _, worker = member.partition("|")
            if worker == dead_worker:
                total.add(self.recover(ChunkRef.parse(ck), worker, reason))
        return total

    def leases(self) -> dict[str, float]:
        """Running chunks: `chunkkey|worker` -> lease expiry."""
        with store_errors("reading leases"):
            return {as_text(k): float(v) for k, v in self.redis.hgetall(keys.LEASES).items()}

    def ledger(self) -> dict[str, tuple[str, str, int, float]]:
        """Published, unfinished chunks: chunk key -> (queue key, template, gen, time)."""
        with store_errors("reading the chunk ledger"):
            raw = self.redis.hgetall(keys.LEDGER)
        out = {}
        for k, v in raw.items():
            queue, tpl, gen, when = msgpack.unpackb(as_bytes(v), raw=True)
            out[as_text(k)] = (queue.decode(), tpl.decode(), int(gen), float(when))
        return out

    def reap(self, now: float) -> list[str]:
        """Recover lapsed leases and republish chunks lost in delivery (see module doc)."""
        done: list[str] = []
        with store_errors("reaping"):
            if not self.redis.set(keys.REAPER_LOCK, "1", nx=True, px=1500):
                return done
            leases = self.leases()
            for member, until in leases.items():
                if until < now:
                    ck, _, worker = member.partition("|")
                    loss = self.recover(ChunkRef.parse(ck), worker, LEASE_LAPSED)
                    done.append(f"recovered chunk {ck} from {worker}: {loss}")
            held = {m.partition("|")[0] for m in leases}
            done += self._republish_orphans(held, now)
        return done

    def _republish_orphans(self, held: set[str], now: float) -> list[str]:
        r = self.redis
        done = []
        old = r.zrangebyscore(
            keys.LEDGER_TIMES,
            "-inf",
            now - self.settings.orphan_seconds,
            start=0,
            num=ORPHANS_PER_PASS,
        )
        suspects = {as_text(k): float(v) for k, v in r.hgetall(keys.ORPHAN_SUSPECTS).items()}
        # Without `withscores`, ZRANGEBYSCORE replies with members only.
        for raw in cast("list[bytes]", old):
            ck = raw.decode()
            entry = r.hget(keys.LEDGER, ck)
            if entry is None or ck in held:
                r.zadd(keys.LEDGER_TIMES, {ck: now}, xx=True)
                r.hdel(keys.ORPHAN_SUSPECTS, ck)
                continue
            queue, tpl, gen, _ = msgpack.unpackb(as_bytes(entry), raw=True)
            message = tpl.decode().replace(messages.TAG, messages.delivery_tag(ck, int(gen)))
            # The oldest messages sit at the tail (LPUSH in, BRPOP out): search from there.
            if r.lpos(queue, message, rank=-1) is not None:
                r.zadd(keys.LEDGER_TIMES, {ck: now}, xx=True)  # waiting its turn; look later
                r.hdel(keys.ORPHAN_SUSPECTS, ck)
            elif ck in suspects and now - suspects[ck] >= ORPHAN_CONFIRM:
                r.hdel(keys.ORPHAN_SUSPECTS, ck)
                loss = self.recover(ChunkRef.parse(ck), "", "orphaned chunk")
                done.append(f"chunk {ck} was lost in delivery; {loss}")
            elif ck not in suspects:
                r.hset(keys.ORPHAN_SUSPECTS, ck, now)
        return done

    def heartbeat(self, info: WorkerInfo) -> None:
        """Register (or refresh) a live worker."""
        doc = {
            "queues": list(info.queues),
            "concurrency": info.concurrency,
            "seen": info.seen,
            "runtime": info.runtime,
            "busy": info.busy,
            "envs": list(info.environments),
        }
        with store_errors("registering a worker"):
            self.redis.hset(keys.WORKERS, info.name, json.dumps(doc))

    def forget_worker(self, name: str) -> None:
        """A worker shut down cleanly."""
        with store_errors("deregistering a worker"):
            self.redis.hdel(keys.WORKERS, name)
