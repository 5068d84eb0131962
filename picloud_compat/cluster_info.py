"""What the client knows about the cluster's workers (for sizing map chunks)."""

from __future__ import annotations

import json
import threading
import time

import redis

from picloud_compat import keys

WORKER_TIMEOUT = 10.0
"""A worker that has not registered for this long is considered gone."""
_CACHE_SECONDS = 5.0
_cache: dict[int, tuple[float, dict[str, int]]] = {}
_lock = threading.Lock()


def live_workers(client: redis.Redis) -> dict[str, dict]:
    now = time.time()
    out = {}
    for name, raw in client.hgetall(keys.WORKERS).items():
        try:
            info = json.loads(raw)
        except ValueError:
            continue
        if now - float(info.get("seen", 0)) <= WORKER_TIMEOUT:
            out[name.decode()] = info
    return out


def cluster_concurrency(client: redis.Redis, queue: str) -> int:
    """Total processes consuming `queue` (at least 2, so chunks stay small)."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(id(client))
        if cached is None or now - cached[0] > _CACHE_SECONDS:
            per_queue: dict[str, int] = {}
            for info in live_workers(client).values():
                for q in info.get("queues", []):
                    per_queue[q] = per_queue.get(q, 0) + int(info.get("concurrency", 1))
            cached = _cache[id(client)] = (now, per_queue)
    return max(2, cached[1].get(queue, 0))
