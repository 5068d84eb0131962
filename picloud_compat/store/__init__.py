"""The only door to Redis (and to the simulator's in-memory equivalent).

Everything the platform keeps lives behind the role protocols of `contract`:
`ClientStore`, `RunnerStore`, `SupervisionStore` and `RecordStore`. Two backends
implement all of them with identical signatures: `redis.RedisStore` for a cluster and
`memory.MemoryStore` for the simulator. No module outside this package imports
``redis``; `keys` names every Redis key, once, for Python and Lua.
"""
