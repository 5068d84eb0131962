"""`RedisStore`: the cluster's store, one Lua script per atomic operation.

One class made of one mixin per role (`store.contract`), each in its own module:
client side, runner side, supervision, records. Every public method is one round
trip, except where a module says otherwise.
"""

from __future__ import annotations

from picloud_compat.store.redis.client_side import RedisClientSide
from picloud_compat.store.redis.connection import connect, store_errors
from picloud_compat.store.redis.records import RedisRecords
from picloud_compat.store.redis.runner_side import RedisRunnerSide
from picloud_compat.store.redis.supervision import RedisSupervision

__all__ = ["RedisStore", "connect", "store_errors"]


class RedisStore(RedisClientSide, RedisRunnerSide, RedisSupervision, RedisRecords):
    """Every role of the store contract, on one Redis connection pool."""
