"""Where one W3 map's wall time goes, beside mp.Pool(2)'s, map by map.

    python -m bench.w3_budget            # 40 maps of each, alternating
    python -m bench.w3_budget --maps 80

W3's ratio to mp.Pool moves by several percent between runs, so a change is judged by
its parts: this starts a private redis-server and one picloud worker (prefork 2, as
`bench.run` does), then alternates one mp.Pool map and one cluster map of W3's 16 jobs
and prints medians of

- the wall of each, and their per-map ratio (mp.Pool's wall over ours);
- when each job process began its first job (the start: the submit, then the chunk's
  Celery message or a wake-up, then a claim);
- per process, the time between its first job's start and its last job's end that no
  job ran (the gaps: recording, the next claim, the clean room);
- the end (last job recorded -> `result` returned) and the idle time of the process
  that finished first;
- the CPU every process of ours spent per map (schedstat), the job processes' net of
  the jobs' own runtime. On a 2-vCPU machine every millisecond of it is taken from the
  jobs: that, not the waits, is what the gap to mp.Pool is made of (RESULTS.md).

Job start times come from the records (`finished` - `runtime`): the record's time is
taken as the outcome is sent, a fraction of a millisecond after the function returned,
so starts read that much late and gaps that much short.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cloudpickle
import psutil
import redis

from bench import run as br
from bench import workloads as wl


def _cpu_ms(pids: list[int]) -> dict[int, float]:
    """CPU milliseconds each process (all its threads) has run, from schedstat."""
    out = {}
    for pid in pids:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:  # the thread ended meanwhile
                pass
        out[pid] = total / 1e6
    return out


def _one_map(client, roles: dict[int, str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One cluster map of W3: its timeline and the CPU per role, in ms."""
    before = _cpu_ms(list(roles))
    t0 = time.time()
    jids = client.map(wl.sum_primes, br.W3_INPUTS)
    returned = time.time()
    client.result(jids)
    done = time.time()
    after = _cpu_ms(list(roles))
    info = client.info(jids, ["finished", "runtime", "worker"])
    client.delete(jids)
    per_process: dict[str, list[tuple[float, float]]] = {}
    for jid in jids:
        rec = info[jid]
        end = rec["finished"].timestamp()  # a local datetime, from the record's time
        per_process.setdefault(rec["worker"], []).append((end - rec["runtime"], end))
    firsts = sorted(min(s for s, _ in jobs) for jobs in per_process.values())
    lasts = [max(e for _, e in jobs) for jobs in per_process.values()]
    gaps = [
        (max(e for _, e in jobs) - min(s for s, _ in jobs)) - sum(e - s for s, e in jobs)
        for jobs in per_process.values()
    ]
    row = {
        "wall": (done - t0) * 1e3,
        "map() returned": (returned - t0) * 1e3,
        "first job starts": (firsts[0] - t0) * 1e3,
        "last process starts": (firsts[-1] - t0) * 1e3,
        "gaps per process": statistics.mean(gaps) * 1e3,
        "end (last record -> result)": (done - max(lasts)) * 1e3,
        "idle at the end": (max(lasts) - min(lasts)) * 1e3,
    }
    runtime = sum(rec["runtime"] for rec in info.values()) * 1e3
    cpu: dict[str, float] = {}
    for pid, role in roles.items():
        cpu[role] = cpu.get(role, 0.0) + after[pid] - before[pid]
    cpu["job processes"] -= runtime  # what they spent besides the jobs themselves
    row.update({f"CPU: {role}": ms for role, ms in cpu.items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=40)
    args = parser.parse_args()
    from picloud_compat.client.session import cluster_client
    from picloud_compat.settings import Settings

    cloudpickle.register_pickle_by_value(wl)
    tmp = Path(tempfile.mkdtemp(prefix="picloud-w3-budget-"))
    empty = tmp / "cwd"
    empty.mkdir()
    port = br.free_port()
    url = f"redis://127.0.0.1:{port}"
    procs = []
    pool = None
    try:
        procs.append(br.start_redis(tmp, port))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        ours = br.worker_env(env, f"{url}/0", False)
        worker_argv = br.worker_argv(["c1"], 2, "WARNING", None)
        procs.append(br.start(worker_argv, ours, empty, tmp / "ours.log"))
        store = redis.Redis(port=port)
        br.wait_ready(lambda: store.hlen("pc:workers") > 0, "the picloud worker")
        client = cluster_client(Settings(server_url=f"{url}/0", signing_key=br.SIGNING_KEY), "b")
        pool = br.PoolSystem()
        for _ in range(3):  # imports, connections, the pool's processes
            client.result(client.map(wl.noop, list(range(50))))
            pool.map(wl.noop, list(range(50)))
        roles = {procs[0].pid: "redis-server", os.getpid(): "client", procs[1].pid: "worker main"}
        pool_pids = [child.pid for child in psutil.Process(procs[1].pid).children()]
        roles.update({pid: "job processes" for pid in pool_pids})
        rows, pool_walls = [], []
        for _ in range(args.maps):
            start = time.perf_counter()
            pool.map(wl.sum_primes, br.W3_INPUTS)
            pool_walls.append((time.perf_counter() - start) * 1e3)
            rows.append(_one_map(client, roles))
        ratios = [p / r["wall"] for p, r in zip(pool_walls, rows, strict=True)]
        print(f"{args.maps} maps each, medians (ms)")
        print(f"  {'mp.Pool(2) wall':30} {statistics.median(pool_walls):8.2f}")
        for key in rows[0]:
            print(f"  {key:30} {statistics.median(r[key] for r in rows):8.2f}")
        print(f"  {'ratio (mp.Pool wall / ours)':30} {statistics.median(ratios):8.3f}")
        client.close()
    finally:
        if pool is not None:
            pool.close()
        for proc in reversed(procs):
            br.stop(proc)


if __name__ == "__main__":
    main()
