"""Benchmarks W1-W4: picloud-compat (cluster and simulator) beside raw Celery and mp.Pool.

    python -m bench.run                 # 3 repetitions, prints a table
    python -m bench.run --reps 5 --write bench/RESULTS.md

One invocation starts a private redis-server, one picloud worker and one raw Celery worker
(both prefork, concurrency 2, run from an empty directory), a simulator with 2 processes
and a multiprocessing.Pool(2); every process is stopped by pid at the end. Repetitions
are interleaved (rep -> workload -> system), each repetition starting one system later
than the one before (what ran just before a system may shift its timings, so every
system takes every place in turn); the table reports medians, and ratios are medians of
per-repetition ratios against raw Celery in the same repetition.

W1  2,000 no-op jobs, submit all then gather          jobs/s
W2  200 sequential call -> result                      p50 / p95 / p99 ms
W3  16 prime sums of ~40 ms (sum_primes(30000+i))      speed-up vs serial, same run
W4  200 jobs each taking a distinct 1 MiB argument     MB/s
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cloudpickle

from bench import workloads as wl
from picloud_compat.workers.cli import worker_argv

SIGNING_KEY = "bench-signing-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- systems ------------------------------------------------------------------------


class System:
    name = ""

    def map(self, fn: Callable[..., Any], items: list[Any]) -> list[Any]:
        raise NotImplementedError

    def call_result(self, fn: Callable[..., Any], arg: Any) -> Any:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Drop the repetition's records (not timed)."""

    def close(self) -> None:
        pass


class CloudSystem(System):
    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self._jids: list[int] = []

    def map(self, fn, items):  # type: ignore[no-untyped-def]
        jids = self.client.map(fn, items)
        self._jids += jids
        return self.client.result(jids)

    def call_result(self, fn, arg):  # type: ignore[no-untyped-def]
        jid = self.client.call(fn, arg)
        self._jids.append(jid)
        return self.client.result(jid)

    def cleanup(self) -> None:
        for start in range(0, len(self._jids), 5000):
            self.client.delete(self._jids[start : start + 5000])
        self._jids = []

    def close(self) -> None:
        self.client.close()


class RawCelery(System):
    name = "raw Celery"

    def __init__(self) -> None:
        from bench.raw_celery import run_pickled

        self.task = run_pickled
        cloudpickle.register_pickle_by_value(wl)

    def _blob(self, fn, arg):  # type: ignore[no-untyped-def]
        return cloudpickle.dumps((fn, (arg,)))

    def map(self, fn, items):  # type: ignore[no-untyped-def]
        results = [self.task.apply_async((self._blob(fn, x),)) for x in items]
        return [cloudpickle.loads(r.get()) for r in results]

    def call_result(self, fn, arg):  # type: ignore[no-untyped-def]
        return cloudpickle.loads(self.task.apply_async((self._blob(fn, arg),)).get())


class PoolSystem(System):
    name = "mp.Pool(2)"

    def __init__(self) -> None:
        # The workers are forks of this process, whose SIGTERM handler exits through
        # Python: a worker waiting on the pool's queue lock then never ends, and
        # `terminate()` waits for it forever. They get the default action back.
        self.pool = get_context("fork").Pool(
            2, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)
        )

    def map(self, fn, items):  # type: ignore[no-untyped-def]
        return self.pool.map(fn, items)

    def call_result(self, fn, arg):  # type: ignore[no-untyped-def]
        return self.pool.apply_async(fn, (arg,)).get()

    def close(self) -> None:
        self.pool.terminate()


# -- workloads ----------------------------------------------------------------------


def w1(system: System, n: int) -> dict[str, float]:
    start = time.perf_counter()
    out = system.map(wl.noop, list(range(n)))
    wall = time.perf_counter() - start
    assert out == list(range(n))
    return {"jobs/s": n / wall}


def w2(system: System, n: int = 200) -> dict[str, float]:
    for i in range(10):  # warm-up
        system.call_result(wl.noop, i)
    lat = []
    for i in range(n):
        start = time.perf_counter()
        assert system.call_result(wl.noop, i) == i
        lat.append((time.perf_counter() - start) * 1000)
    return {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99)}


W3_INPUTS = list(range(30000, 30016))


def serial_w3() -> float:
    start = time.perf_counter()
    [wl.sum_primes(x) for x in W3_INPUTS]
    return time.perf_counter() - start


def w3(system: System, serial: float) -> dict[str, float]:
    start = time.perf_counter()
    out = system.map(wl.sum_primes, W3_INPUTS)
    wall = time.perf_counter() - start
    assert len(out) == len(W3_INPUTS)
    return {"speed-up": serial / wall, "wall s": wall}


def w4(system: System, payloads: list[bytes]) -> dict[str, float]:
    start = time.perf_counter()
    out = system.map(wl.payload_len, payloads)
    wall = time.perf_counter() - start
    assert out == [len(p) for p in payloads]
    return {"MB/s": sum(map(len, payloads)) / wall / 1e6}


# -- processes ----------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def start_redis(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """A private, non-persistent redis-server on loopback `port`, ready when returned."""
    import redis

    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp)]
    proc = start(argv, dict(os.environ), tmp, tmp / "redis.log")
    wait_ready(lambda: redis.Redis(port=port).ping(), "redis-server")
    return proc


def start_isolated(
    env: dict[str, str], tmp: Path, empty: Path, procs: list[subprocess.Popen[bytes]]
) -> Callable[[], Any]:
    """The isolated mode: its own Redis behind a password no tenant holds, a worker
    running jobs in per-tenant executors, and the gateway as the tenants' door. Returns
    what makes its client once everything is up."""
    import redis

    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.client.remote import remote_client
    from picloud_compat.settings import Settings
    from picloud_compat.store.redis import RedisStore

    port, gw_port, password = free_port(), free_port(), secrets.token_hex(16)
    redis_argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    redis_argv += ["--appendonly", "no", "--dir", str(tmp), "--requirepass", password]
    procs.append(start(redis_argv, dict(os.environ), tmp, tmp / "redis-isolated.log"))
    iso_redis = redis.Redis(port=port, password=password)
    wait_ready(lambda: iso_redis.ping(), "the isolated redis-server")
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    gateway = f"http://127.0.0.1:{gw_port}"
    iso = dict(
        env,
        PICLOUD_SERVER_URL=url,
        PICLOUD_SIGNING_KEY=SIGNING_KEY,
        PICLOUD_ISOLATION="tenant",
        PICLOUD_GATEWAY_URL=gateway,
    )
    procs.append(start(worker_argv(["c1"], 2, "WARNING", None), iso, empty, tmp / "isolated.log"))
    gateway_argv = [sys.executable, "-m", "picloud_compat.cli", "gateway", "--port", str(gw_port)]
    procs.append(start(gateway_argv, iso, empty, tmp / "gateway.log"))

    def client() -> Any:
        wait_ready(lambda: iso_redis.hlen("pc:workers") > 0, "the isolated worker")
        wait_ready(lambda: _http_up(f"{gateway}/openapi.json"), "the gateway")
        settings = Settings(server_url=url, signing_key=SIGNING_KEY)
        admin = RedisStore.from_url(url, settings)
        api_key, secret = AccountRegistry(admin, settings).create_key("bench")
        admin.close()
        return remote_client(Settings(server_url=gateway, api_key=api_key, api_secretkey=secret))

    return client


def _http_up(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def wait_ready(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


# -- main ---------------------------------------------------------------------------


def worker_env(env: dict[str, str], url: str, fast_start: bool) -> dict[str, str]:
    """The team-mode worker's environment (with the opt-in fast start: workers/pool.py)."""
    ours = dict(env, PICLOUD_SERVER_URL=url, PICLOUD_SIGNING_KEY=SIGNING_KEY)
    if fast_start:
        ours["PICLOUD_FAST_START"] = "1"
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000, help="W1 job count")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    parser.add_argument("--only", default="", help="comma-separated systems to time (debugging)")
    parser.add_argument(
        "--fast-start", action="store_true", help="the cluster worker with PICLOUD_FAST_START=1"
    )
    parser.add_argument(
        "--skip-isolated",
        action="store_true",
        help="no isolated-mode system (it needs root and a world-readable interpreter)",
    )
    args = parser.parse_args()
    chosen = args.workloads.split(",")
    # A SIGTERM (e.g. `timeout`) unwinds through the cleanup below, so the Redis and the
    # workers this run started (in sessions of their own) never outlive it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import redis

    from picloud_compat.client.session import cluster_client, simulator_client
    from picloud_compat.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="picloud-bench-"))
    empty = tmp / "cwd"
    empty.mkdir()
    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    procs = []
    systems: list[System] = []
    try:
        procs.append(start_redis(tmp, port))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        ours = worker_env(env, f"{url}/0", args.fast_start)
        procs.append(start(worker_argv(["c1"], 2, "WARNING", None), ours, empty, tmp / "ours.log"))
        raw = dict(env, BENCH_REDIS=url, PYTHONPATH=str(ROOT), C_FORCE_ROOT="1")
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.raw_celery",
                    "worker",
                    "-c",
                    "2",
                    "-l",
                    "WARNING",
                ],
                raw,
                empty,
                tmp / "raw.log",
            )
        )
        isolated = None if args.skip_isolated else start_isolated(env, tmp, empty, procs)
        r0 = redis.Redis(port=port, db=0)
        wait_ready(lambda: r0.hlen("pc:workers") > 0, "the picloud worker")
        os.environ["BENCH_REDIS"] = url
        cluster = cluster_client(Settings(server_url=f"{url}/0", signing_key=SIGNING_KEY), "bench")
        systems = [CloudSystem("cloud (cluster)", cluster)]
        if isolated is not None:
            systems.append(CloudSystem("cloud (isolated)", isolated()))
        raw_sys = RawCelery()
        systems += [
            CloudSystem("cloud (simulator)", simulator_client(Settings(num_procs=2))),
            raw_sys,
            PoolSystem(),
        ]
        wait_ready(lambda: raw_sys.call_result(wl.noop, 1) == 1, "the raw Celery worker")
        for s in systems:  # warm every system once (imports, connections, process pools)
            s.map(wl.noop, list(range(50)))
            s.cleanup()
        payloads = [os.urandom(1 << 20) for _ in range(200)]
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        serial_times: list[float] = []
        for rep in range(args.reps):
            serial = serial_w3() if "W3" in chosen else 0.0
            serial_times.append(serial)
            # Each repetition starts one system later: what ran just before a system
            # may shift its timings (it may still hold the CPU or Redis), so every
            # system takes every place in turn.
            shift = rep % len(systems)
            order = systems[shift:] + systems[:shift]
            for wname in chosen:
                for s in order:
                    if args.only and s.name not in args.only.split(","):
                        continue
                    if wname == "W1":
                        res = w1(s, args.n)
                    elif wname == "W2":
                        res = w2(s)
                    elif wname == "W3":
                        res = w3(s, serial)
                    else:
                        res = w4(s, payloads)
                    s.cleanup()
                    results.setdefault((wname, s.name), []).append(res)
                    print(
                        f"rep {rep + 1} {wname} {s.name:18} "
                        + "  ".join(f"{k} {v:,.2f}" for k, v in res.items()),
                        flush=True,
                    )
        report = render(results, chosen, [s.name for s in systems], args, serial_times)
        print()
        print(report)
        if args.write:
            with open(args.write, "a") as f:
                f.write(report + "\n")
    finally:
        for s in systems:
            try:
                s.close()
            except Exception:
                pass
        for p in reversed(procs):
            stop(p)


PRIMARY = {"W1": "jobs/s", "W2": "p50", "W3": "speed-up", "W4": "MB/s"}
TARGETS = {
    "W1": "≥ 30x raw Celery",
    "W2": "p50 ≤ 0.4x raw Celery",
    "W3": "≥ 1.85x serial",
    "W4": "≥ 5x raw Celery",
}


def render(results, chosen, names, args, serial_times) -> str:  # type: ignore[no-untyped-def]
    lines = [
        f"### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"({args.reps} reps, W1 n={args.n}{'; fast start on' if args.fast_start else ''}; "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()})",
        "",
    ]
    for wname in chosen:
        metric = PRIMARY[wname]
        raw = results[(wname, "raw Celery")]
        keys = list(raw[0])
        lines.append(f"**{wname}** (target: {TARGETS[wname]})")
        lines.append("")
        lines.append(
            "| system | " + " | ".join(f"{k} (median)" for k in keys) + " | vs raw Celery |"
        )
        lines.append("|---|" + "---|" * (len(keys) + 1))
        for name in names:
            rows = results.get((wname, name))
            if not rows:  # left out with --only
                continue
            med = {k: statistics.median(r[k] for r in rows) for k in keys}
            ratios = [r[metric] / base[metric] for r, base in zip(rows, raw, strict=True)]
            ratio = statistics.median(ratios)
            lines.append(
                f"| {name} | " + " | ".join(f"{med[k]:,.2f}" for k in keys) + f" | {ratio:.2f}x |"
            )
        if wname == "W3":
            lines.append(
                f"| serial (in-process) | {statistics.median(serial_times) * 1000:.0f} ms | | |"
            )
            pool = results.get((wname, "mp.Pool(2)"))
            for name in names:
                rows = results.get((wname, name))
                if pool and rows and name != "mp.Pool(2)":
                    per_rep = [r[metric] / p[metric] for r, p in zip(rows, pool, strict=True)]
                    lines.append(
                        f"\n{name}: speed-up {statistics.median(per_rep):.2f}x mp.Pool(2)'s "
                        f"(median of per-repetition ratios; goal ≥ 0.97x)"
                    )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
