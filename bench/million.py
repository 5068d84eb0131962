"""A 1,000,000-job `map` on one host: throughput, and the client's memory.

    python -m bench.million [--n 1000000] [--processes 2]

Starts a private redis-server and one `picloud worker` (prefork) on c1, then times, in
the client process: the `map` call (submission), the wait for every job (`join`), and
reading every result back (`iresult`, which streams). The client's peak RSS (the issue's
limit is 300 MB) is read from getrusage. Everything it started is stopped at the end,
also on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import workloads as wl
from bench.run import (
    SIGNING_KEY,
    free_port,
    start,
    start_redis,
    stop,
    wait_ready,
    worker_env,
)
from picloud_compat.workers.cli import worker_argv


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import redis

    from picloud_compat.client.session import cluster_client
    from picloud_compat.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="picloud-million-"))
    empty = tmp / "cwd"
    empty.mkdir()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    procs = []
    try:
        procs.append(start_redis(tmp, port))
        plain = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env = worker_env(plain, url, fast_start=False)
        argv = worker_argv(["c1"], args.processes, "WARNING", None)
        procs.append(start(argv, env, empty, tmp / "worker.log"))
        r = redis.Redis(port=port)
        wait_ready(lambda: r.hlen("pc:workers") > 0, "the picloud worker")
        client = cluster_client(Settings(server_url=url, signing_key=SIGNING_KEY), "million")
        client.result(client.map(wl.noop, range(100)))  # warm up
        before = rss_mb()

        t0 = time.perf_counter()
        jids = client.map(wl.noop, range(args.n))
        t1 = time.perf_counter()
        after_submit = rss_mb()
        client.join(jids, timeout=3600)
        t2 = time.perf_counter()
        after_join = rss_mb()
        count = sum(1 for _ in client.iresult(jids))
        t3 = time.perf_counter()
        used = r.info("memory")["used_memory"]
        print(f"jobs:             {args.n:,} on {args.processes} worker processes (c1)")
        print(f"submit (map):     {t1 - t0:.1f} s = {args.n / (t1 - t0):,.0f} jobs/s")
        print(f"run (until join): {t2 - t0:.1f} s = {args.n / (t2 - t0):,.0f} jobs/s end to end")
        print(f"read results:     {t3 - t2:.1f} s ({count:,} results)")
        print(
            f"client peak RSS:  {rss_mb():.0f} MB (before the map {before:.0f}, after it "
            f"{after_submit:.0f}, after join {after_join:.0f})"
        )
        print(f"Redis memory:     {used / 2**20:.0f} MB = {used / args.n:,.0f} B per finished job")
        client.close()
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
