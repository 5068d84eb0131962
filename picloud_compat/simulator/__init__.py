"""The simulator: ``cloud.start_simulator()`` and ``cloud.mp``, with no server at all.

`cluster.LocalCluster` runs job processes around an in-memory store; `mode` gives
clients the simulator's files, crons and local REST gateway; `worker` is a job
process; `rpc` links them.
"""
