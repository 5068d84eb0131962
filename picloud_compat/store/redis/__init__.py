"""`RedisStore`: the cluster's store, one Lua script per atomic operation.

One class made of six mixins, one concept each: `jobs` (every change of a job's
state, each a Lua script), `reads`, `notices` (a client's wait for completions),
`supervision` (kill requests, leases, recovery, reaping, registrations), `records`
(crons, REST endpoints, API keys) and `stealing` (idle processes taking queued jobs of
busy chunks). Together they implement every role protocol of `store.contract`. Every
public method is one round trip, except where a module says otherwise.
"""

from __future__ import annotations

from picloud_compat.store.redis.connection import connect, store_errors
from picloud_compat.store.redis.jobs import RedisJobs
from picloud_compat.store.redis.notices import RedisNotices
from picloud_compat.store.redis.reads import RedisReads
from picloud_compat.store.redis.records import RedisRecords
from picloud_compat.store.redis.stealing import RedisStealing
from picloud_compat.store.redis.supervision import RedisSupervision

__all__ = ["RedisStore", "connect", "store_errors"]


class RedisStore(
    RedisJobs, RedisReads, RedisNotices, RedisSupervision, RedisRecords, RedisStealing
):
    """Every role of the store contract, on one Redis connection pool."""
