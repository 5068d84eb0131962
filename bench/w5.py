"""W5: W1 and W2 with Redis a network hop away, as on EC2 across availability zones.

    python -m bench.w5                       # 3 repetitions, 0.5 ms added round trip
    python -m bench.w5 --reps 5 --delay-ms 0.5 --n 2000 --write bench/RESULTS.md

Per-job round trips to Redis are where raw Celery loses most, and on loopback they cost
next to nothing, so W1/W2 on one machine flatter it. This kernel has no ``tc netem``, so
Redis is put behind ``bench.delay_relay``, which holds every byte ``--delay-ms / 2`` in
each direction: ``--delay-ms`` is the round trip added on top of the relay's own hop
(measured and reported, with a zero-hold relay beside it). Needs root.

Hosts are network namespaces (``pc-w5-<pid>-*``) on one bridge in a namespace of its own,
10.214.5.0/24: Redis and the relays on .1 (Redis also answers on .1:6379 directly, for the
baseline PING only), the client on .2, the workers on .3. Every byte between client or
workers and Redis crosses the relay; a CLIENT LIST after the warm-up checks it. The timing
runs in a driver process started in the client namespace. Systems, both prefork with 2
processes: "cloud (cluster)" (a picloud worker, team mode) and "raw Celery"
(``bench.raw_celery``). Repetitions interleave (rep -> workload -> system, the system
order flipping every repetition); the tables report medians, ratios are medians of
per-repetition ratios. The relay's CPU time is sampled around each workload, since on two
cores it competes with the systems it measures. Everything is stopped by pid and every
namespace deleted at the end, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.netns import Bridge
from bench.run import ROOT, SIGNING_KEY, percentile, start, stop, wait_ready
from picloud_compat.workers.cli import worker_argv

NET = "10.214.5"
REDIS_HOST, CLIENT_HOST, WORKER_HOST = f"{NET}.1", f"{NET}.2", f"{NET}.3"
REDIS_PORT, RELAY_PORT, HOP_PORT = 6379, 7000, 7001
W2_CALLS = 210  # bench.run.w2: 10 warm-up calls, then 200 timed
PINGS = 500


class Topology:
    """Redis, client and worker namespaces on one bridge (`netns.Bridge`)."""

    def __init__(self) -> None:
        self._bridge = Bridge(f"pc-w5-{os.getpid()}")

    def ns(self, name: str) -> str:
        return f"{self._bridge.tag}-{name}"

    def create(self) -> None:
        self._bridge.create()
        for name, address in (
            ("redis", REDIS_HOST),
            ("client", CLIENT_HOST),
            ("worker", WORKER_HOST),
        ):
            self._bridge.plug(self.ns(name), f"v-{name}", address)

    def prefix(self, name: str) -> list[str]:
        """`ip netns exec` execs in place: the pid Popen returns is the command's own."""
        return ["ip", "netns", "exec", self.ns(name)]

    def close(self) -> None:
        self._bridge.close()


# -- the driver (runs in the client namespace) --------------------------------------


def ping_rtt(url: str) -> dict[str, float]:
    """redis-py PING round trips, in µs."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for _ in range(50):
            client.ping()
        lat = []
        for _ in range(PINGS):
            t0 = time.perf_counter()
            client.ping()
            lat.append((time.perf_counter() - t0) * 1e6)
    finally:
        client.close()
    return {"p50": percentile(lat, 0.5), "p95": percentile(lat, 0.95)}


def cpu_seconds(pid: int) -> float:
    """CPU time of a single-threaded process, from the scheduler's nanosecond count (the
    user and system times in /proc/PID/stat move in 10 ms ticks: too coarse for a
    workload of a few hundred milliseconds)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def relay_counts(pid: int, path: Path) -> dict[str, float]:
    """Chunks relayed so far (each a read on one side: about one message one way), and
    how late the chunks since the previous call went out."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the relay wrote no counts")
        time.sleep(0.001)
    counts: dict[str, float] = json.loads(path.read_text())
    return counts


def drive(cfg: dict[str, Any]) -> None:
    """Time W1 and W2 for both systems through the relay; write the figures to cfg["out"]."""
    import redis

    from bench import run
    from bench import workloads as wl
    from picloud_compat.client.session import cluster_client
    from picloud_compat.settings import Settings

    url, relay_pid, counts = cfg["url"], cfg["relay_pid"], Path(cfg["counts"])
    r0 = redis.Redis.from_url(f"{url}/0")
    wait_ready(lambda: r0.hlen("pc:workers") > 0, "the picloud worker")
    os.environ["BENCH_REDIS"] = url
    cluster = cluster_client(Settings(server_url=f"{url}/0", signing_key=SIGNING_KEY), "bench")
    raw = run.RawCelery()
    systems: list[run.System] = [run.CloudSystem("cloud (cluster)", cluster), raw]
    out: dict[str, Any] = {"runs": [], "pings": []}
    try:
        wait_ready(lambda: raw.call_result(wl.noop, 1) == 1, "the raw Celery worker")  # type: ignore[no-untyped-call]
        for s in systems:
            s.map(wl.noop, list(range(50)))
            s.cleanup()
        out["clients"] = relayed_clients(cfg["direct"])
        print(f"Redis clients: {out['clients']}", flush=True)
        for rep in range(cfg["reps"]):
            pings = {k: ping_rtt(cfg[k]) for k in ("direct", "hop", "url")}
            out["pings"].append(pings)
            print(
                f"rep {rep + 1} PING p50 µs: direct {pings['direct']['p50']:.0f}, "
                f"relay hop {pings['hop']['p50']:.0f}, relay+hold {pings['url']['p50']:.0f}",
                flush=True,
            )
            order = systems if rep % 2 == 0 else systems[::-1]
            for wname in ("W1", "W2"):
                for s in order:
                    before = relay_counts(relay_pid, counts)
                    cpu0, t0 = cpu_seconds(relay_pid), time.perf_counter()
                    res = run.w1(s, cfg["n"]) if wname == "W1" else run.w2(s)
                    wall, cpu = time.perf_counter() - t0, cpu_seconds(relay_pid) - cpu0
                    after = relay_counts(relay_pid, counts)
                    s.cleanup()
                    jobs = cfg["n"] if wname == "W1" else W2_CALLS
                    relay = {
                        "cpu s": cpu,
                        "% of a core": 100 * cpu / wall,
                        "µs/job": cpu / jobs * 1e6,
                        "chunks/job": (after["chunks"] - before["chunks"]) / jobs,
                        "late p50 µs": after["late_p50_us"],
                        "late p99 µs": after["late_p99_us"],
                    }
                    out["runs"].append(
                        {"rep": rep, "workload": wname, "system": s.name, **res, "relay": relay}
                    )
                    print(
                        f"rep {rep + 1} {wname} {s.name:16} "
                        + "  ".join(f"{k} {v:,.2f}" for k, v in res.items())
                        + "  | relay "
                        + "  ".join(f"{k} {v:,.1f}" for k, v in relay.items()),
                        flush=True,
                    )
    finally:
        Path(cfg["out"]).write_text(json.dumps(out))
        for s in systems:
            with contextlib.suppress(Exception):
                s.close()


def relayed_clients(direct: str) -> str:
    """Check that every Redis client but this one comes through the relay (127.0.0.1)."""
    import redis

    admin = redis.Redis.from_url(direct)
    try:
        me = admin.client_id()
        others = [c for c in admin.client_list() if int(c["id"]) != me]
    finally:
        admin.close()
    relayed = [c for c in others if c["addr"].startswith("127.0.0.1:")]
    if len(relayed) != len(others):
        raise SystemExit(f"Redis clients bypass the relay: {others}")
    return f"{len(relayed)} of {len(others)} through the relay"


# -- the orchestrator (root namespace) ------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000, help="W1 job count")
    parser.add_argument(
        "--delay-ms", type=float, default=0.5, help="round trip added (half each way)"
    )
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    parser.add_argument("--drive", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(json.loads(args.drive.read_text()))
        return
    if os.geteuid() != 0:
        raise SystemExit("W5 needs root (network namespaces)")
    # A SIGTERM (e.g. `timeout`) unwinds through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="picloud-w5-"))
    empty = tmp / "cwd"
    empty.mkdir()
    net = Topology()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = False
    try:
        net.create()
        redis_argv = ["redis-server", "--bind", "127.0.0.1", REDIS_HOST, "--port", str(REDIS_PORT)]
        redis_argv += ["--protected-mode", "no", "--save", "", "--appendonly", "no"]
        redis_argv += ["--dir", str(tmp)]
        procs["redis"] = start(net.prefix("redis") + redis_argv, env, tmp, tmp / "redis.log")
        ping = [*net.prefix("redis"), "redis-cli", "-p", str(REDIS_PORT), "ping"]
        wait_ready(lambda: subprocess.run(ping, capture_output=True).stdout == b"PONG\n", "redis")
        for name, port, one_way in (
            ("relay", RELAY_PORT, args.delay_ms / 2),
            ("hop", HOP_PORT, 0.0),
        ):
            # SCHED_FIFO: a network does not queue behind the processes it connects. On a
            # loaded machine 1% of chunks went out 1-3 ms late at nice 0 or -10, under
            # 0.1 ms under FIFO. It never spins (it blocks in epoll); its CPU time is
            # reported.
            relay_argv = ["chrt", "-f", "10", sys.executable, "-m", "bench.delay_relay"]
            relay_argv += ["--listen", f"{REDIS_HOST}:{port}"]
            relay_argv += ["--upstream", f"127.0.0.1:{REDIS_PORT}"]
            relay_argv += ["--one-way-ms", str(one_way), "--stats", str(tmp / f"{name}.json")]
            relay_argv += ["--counts", str(tmp / f"{name}-counts.json")]
            procs[name] = start(net.prefix("redis") + relay_argv, env, ROOT, tmp / f"{name}.log")
        url = f"redis://{REDIS_HOST}:{RELAY_PORT}"
        ours = dict(env, PICLOUD_SERVER_URL=f"{url}/0", PICLOUD_SIGNING_KEY=SIGNING_KEY)
        ours_argv = net.prefix("worker") + worker_argv(["c1"], 2, "WARNING", None)
        procs["ours"] = start(ours_argv, ours, empty, tmp / "ours.log")
        raw = dict(env, BENCH_REDIS=url, PYTHONPATH=str(ROOT), C_FORCE_ROOT="1")
        raw_argv = [sys.executable, "-m", "celery", "-A", "bench.raw_celery", "worker"]
        raw_argv += ["-c", "2", "-l", "WARNING"]
        procs["raw"] = start(net.prefix("worker") + raw_argv, raw, empty, tmp / "raw.log")
        cfg = {
            "url": url,
            "hop": f"redis://{REDIS_HOST}:{HOP_PORT}",
            "direct": f"redis://{REDIS_HOST}:{REDIS_PORT}",
            "relay_pid": procs["relay"].pid,
            "counts": str(tmp / "relay-counts.json"),
            "reps": args.reps,
            "n": args.n,
            "out": str(tmp / "results.json"),
        }
        (tmp / "cfg.json").write_text(json.dumps(cfg))
        driver_argv = [sys.executable, "-m", "bench.w5", "--drive", str(tmp / "cfg.json")]
        procs["driver"] = subprocess.Popen(
            net.prefix("client") + driver_argv, env=env, cwd=ROOT, start_new_session=True
        )
        if procs["driver"].wait() != 0:
            raise SystemExit("the driver failed")
        for name in ("ours", "raw", "relay", "hop"):
            stop(procs.pop(name))
        results = json.loads((tmp / "results.json").read_text())
        relay_stats = json.loads((tmp / "relay.json").read_text())
        report = render(results, relay_stats, args)
        print()
        print(report)
        if args.write:
            with open(args.write, "a") as f:
                f.write(report + "\n")
        done = True
    finally:
        for proc in reversed(procs.values()):
            with contextlib.suppress(Exception):
                stop(proc)
        net.close()
        if done:
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # keep the logs
            print(f"logs: {tmp}", file=sys.stderr)


def render(results: dict[str, Any], relay: dict[str, Any], args: Any) -> str:
    med = statistics.median
    lines = [
        f"### W5 run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"({args.reps} reps, W1 n={args.n}, {args.delay_ms} ms held per round trip; "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()})",
        "",
        "| redis-py PING from the client host | p50 µs (median) | p95 µs (median) |",
        "|---|---|---|",
    ]
    for key, label in (
        ("direct", "direct (bridge only)"),
        ("hop", "through the relay, no hold"),
        ("url", f"through the relay, {args.delay_ms / 2:g} ms held each way"),
    ):
        p50 = med(p[key]["p50"] for p in results["pings"])
        p95 = med(p[key]["p95"] for p in results["pings"])
        lines.append(f"| {label} | {p50:,.0f} | {p95:,.0f} |")
    lines += [
        "",
        f"Redis clients during the run: {results['clients']}. Relay: "
        f"{relay['connections']} connections, {relay['chunks']:,} chunks, chunks sent "
        f"{relay['late_p50_us']:.0f} / {relay['late_p99_us']:.0f} µs after due (p50 / p99).",
        "",
    ]
    runs = results["runs"]
    names = list(dict.fromkeys(r["system"] for r in runs))

    def rows(wname: str, name: str) -> list[dict[str, Any]]:
        return [r for r in runs if r["workload"] == wname and r["system"] == name]

    for wname, keys in (("W1", ["jobs/s"]), ("W2", ["p50", "p95", "p99"])):
        raw = rows(wname, "raw Celery")
        ratios = ["jobs/s"] if wname == "W1" else ["p50", "p95"]
        lines += [
            f"**{wname}**" + (" (ms)" if wname == "W2" else ""),
            "",
            "| system | "
            + " | ".join(f"{k} (median)" for k in keys)
            + " | "
            + " | ".join(f"{k} vs raw Celery" for k in ratios)
            + " |",
            "|---|" + "---|" * (len(keys) + len(ratios)),
        ]
        for name in names:
            mine = rows(wname, name)
            cells = [f"{med(r[k] for r in mine):,.2f}" for k in keys]
            for m in ratios:
                cells.append(f"{med(r[m] / b[m] for r, b in zip(mine, raw, strict=True)):.2f}x")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    relay_keys = list(runs[0]["relay"])
    lines += [
        "**The relay's cost** (its CPU while each workload ran, medians; per job: W2 counts "
        f"its {W2_CALLS} calls with the warm-up)",
        "",
        "| workload | system | " + " | ".join(relay_keys) + " |",
        "|---|---|" + "---|" * len(relay_keys),
    ]
    for wname in ("W1", "W2"):
        for name in names:
            mine = rows(wname, name)
            cells = [f"{med(r['relay'][k] for r in mine):,.2f}" for k in relay_keys]
            lines.append(f"| {wname} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
