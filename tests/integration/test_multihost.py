"""Several hosts, for real: workers on three machines, one of them lost mid-map.

Each test builds its own network of namespaces (`tests/netns.py`): Redis on one host,
a prefork Celery worker on each of three more, and a client host, which the test process
itself joins. Leases are short, so a lost host is noticed in seconds. What is checked is
what the single-machine tests cannot show: the recovery works across machines whose
sockets die silently (a crashed host sends no FIN; a partitioned one just goes quiet),
and a host that comes back late cannot overwrite what the others recorded meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from picloud_compat.client.jobs import Client
from picloud_compat.client.session import cluster_client
from picloud_compat.errors import CloudException
from picloud_compat.settings import Settings
from picloud_compat.store import keys
from picloud_compat.store.redis.connection import as_bytes
from picloud_compat.store.redis.supervision import LEASE_LAPSED
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import Worker, wait_for
from tests.netns import (
    Host,
    HostRedis,
    Network,
    alive,
    forget_state_dirs,
    host_worker,
    inside,
    stop_workers,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")
WORKER_ENV = {
    "PICLOUD_LEASE_SECONDS": "3",
    "PICLOUD_ORPHAN_SECONDS": "2",
    "PICLOUD_DRAIN_GRACE": "1",  # teardown: nothing waits for jobs left running
}


def where(
    seconds: float, tag: str, ledger: str | None = None, hold: str | None = None
) -> dict[str, Any]:
    """Sleep, then say where the job ran. With `ledger`, log `start`/`end` lines (tag,
    host, pid) around the sleep, so a run cut short shows as a start alone; with `hold`,
    a second run of a tag waits for that file to exist instead of sleeping."""
    import os
    import socket
    import time

    here = {
        "tag": tag,
        "host": socket.gethostname(),
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "pid": os.getpid(),
    }
    rerun = False
    if ledger:
        with open(ledger, "a+") as f:
            f.seek(0)
            rerun = f"start {tag} " in f.read()
            f.write(f"start {tag} {here['host']} {here['pid']}\n")
    if rerun and hold:
        deadline = time.monotonic() + 120
        while not os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        time.sleep(seconds)
    if ledger:
        with open(ledger, "a") as f:
            f.write(f"end {tag} {here['host']} {here['pid']}\n")
    return {**here, "ended": time.time()}


@dataclass
class Cluster:
    net: Network
    server: HostRedis
    workers: dict[str, Worker]  # by hostname
    client_host: Host
    client: Client
    raw: redis.Redis

    def crash(self, name: str) -> None:
        """Host `name` dies (see `Network.crash`); its worker is gone for good."""
        worker = self.workers[name]
        killed = self.net.crash(self.net.hosts[name])
        assert worker.pid in killed and set(worker.children()) <= set(killed)
        assert worker.proc is not None
        worker.proc.wait(timeout=10)
        forget_state_dirs(worker.pid)
        worker.proc = None

    def registration(self, name: str) -> dict[str, Any] | None:
        """What host `name`'s worker last wrote about itself (queues, busy, seen)."""
        suffix = f":{self.workers[name].pid}".encode()
        for key, doc in self.raw.hgetall(keys.WORKERS).items():
            if as_bytes(key).endswith(suffix):
                found: dict[str, Any] = json.loads(doc)
                return found
        return None


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    ensure_redis_server()
    net = Network()
    with contextlib.ExitStack() as stack:
        stack.callback(net.close)
        net.create()
        redis_host = net.add_host("redis", 1)
        for number, name in enumerate(HOSTS, start=11):
            net.add_host(name, number)
        client_host = net.add_host("client", 21)
        stack.enter_context(inside(client_host))
        server = HostRedis(redis_host, tmp_path)
        stack.callback(server.stop)
        server.start()
        started: list[Worker] = []
        stack.callback(stop_workers, started)
        stack.callback(net.heal_all)  # first, if a test failed mid-partition
        workers = {}
        for name in HOSTS:
            w = host_worker(
                net.hosts[name], server.url, SIGNING_KEY, tmp_path, queues="c1", env=WORKER_ENV
            )
            w.start(wait=False)  # the three start side by side
            started.append(w)
            workers[name] = w
        for w in started:
            w.wait_ready(timeout=60)
        client = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "multi")
        stack.callback(client.close)
        raw = redis.from_url(server.url)
        stack.callback(raw.close)
        yield Cluster(net, server, workers, client_host, client, raw)


# -- reading the ledger ---------------------------------------------------------------


def events(ledger: Path) -> list[tuple[str, str, str, int]]:
    """(event, tag, host, pid) per ledger line."""
    if not ledger.exists():
        return []
    out = []
    for line in ledger.read_text().splitlines():
        event, tag, host, pid = line.split()
        out.append((event, tag, host, int(pid)))
    return out


def starts(ledger: Path) -> dict[str, list[str]]:
    """tag -> the hosts that started it, in order."""
    out: dict[str, list[str]] = {}
    for event, tag, host, _ in events(ledger):
        if event == "start":
            out.setdefault(tag, []).append(host)
    return out


def running(ledger: Path) -> list[tuple[str, str]]:
    """(tag, host) of runs started and not ended."""
    seen = events(ledger)
    ended = {(tag, host, pid) for event, tag, host, pid in seen if event == "end"}
    return [
        (tag, host)
        for event, tag, host, pid in seen
        if event == "start" and (tag, host, pid) not in ended
    ]


def host_full_with(ledger: Path, tag: str) -> tuple[str, list[str]] | None:
    """Once `tag` runs and its host's two processes both run jobs of the test: that host
    and the tags running there (losing it then cuts a map job short, not just `tag`)."""
    now = running(ledger)
    hosts = [host for t, host in now if t == tag]
    if not hosts:
        return None
    there = [t for t, host in now if host == hosts[0]]
    return (hosts[0], there) if len(there) == 2 else None


def start_map_with_a_non_restartable_job(
    client: Client, ledger: Path, once_seconds: float, hold: Path | None = None
) -> tuple[int, list[int], list[str]]:
    once = client.call(where, once_seconds, "once", str(ledger), _restartable=False)
    tags = [f"m{i}" for i in range(10)]
    held = str(hold) if hold else None
    jids = client.map(where, [2.0] * 10, tags, [str(ledger)] * 10, [held] * 10)
    return once, jids, tags


# -- the tests ------------------------------------------------------------------------


def test_workers_on_three_hosts_share_a_map(cluster: Cluster) -> None:
    client = cluster.client
    tags = [f"j{i}" for i in range(12)]
    jids = client.map(where, [1.0] * 12, tags)
    results = client.result(jids, timeout=60)
    assert [r["tag"] for r in results] == tags
    assert {r["host"] for r in results} == set(HOSTS)  # every host took part
    info = client.info(jids, ["status", "attempts", "worker"])
    for jid, r in zip(jids, results, strict=True):
        host = cluster.net.hosts[r["host"]]
        assert r["netns"] == host.inode  # its own network, not a shared one
        assert r["pid"] in cluster.workers[r["host"]].children()  # in that host's pool
        assert info[jid] == {"status": "done", "attempts": 1, "worker": f"{r['host']}:{r['pid']}"}


def test_a_host_crash_mid_map_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.client
    ledger = tmp_path / "ledger"
    once, jids, tags = start_map_with_a_non_restartable_job(client, ledger, 8.0)
    victim, there = wait_for(lambda: host_full_with(ledger, "once"), 30, "a full host")
    (cut_short,) = [t for t in there if t != "once"]
    cluster.crash(victim)
    survivors = set(HOSTS) - {victim}
    address = cluster.net.hosts[victim].address
    # It died without a word: Redis still holds its connections open.
    assert any(c["addr"].startswith(f"{address}:") for c in cluster.raw.client_list())

    results = client.result(jids, timeout=90)
    assert [r["tag"] for r in results] == tags
    assert {r["host"] for r in results} == survivors
    with pytest.raises(CloudException) as lost:
        client.result(once, timeout=60)
    assert lost.value.status == "error" and LEASE_LAPSED in lost.value.parameter

    assert_recovered(client, ledger, victim, cut_short, jids, tags, results)
    wait_for(lambda: nothing_left(cluster), 15, "no lease and no unfinished chunk left")


def assert_recovered(  # type: ignore[no-untyped-def]
    client, ledger, victim: str, cut_short: str, jids, tags, results
) -> None:
    """After the victim was lost: its non-restartable job ran once and never again, the
    cut-off map job ran twice (the victim's start, then to its end on a survivor), every
    other job once, and the store's counters say exactly that."""
    ran = starts(ledger)
    assert ran["once"] == [victim]
    info = client.info(jids, ["status", "attempts", "worker"])
    for jid, tag, r in zip(jids, tags, results, strict=True):
        assert ran[tag] == ([victim, r["host"]] if tag == cut_short else [r["host"]])
        assert info[jid] == {
            "status": "done",
            "attempts": len(ran[tag]),
            "worker": f"{r['host']}:{r['pid']}",
        }
    metrics = client.store.metrics()
    assert metrics.finished == {"done": 10, "error": 1}
    assert (metrics.requeued, metrics.lost) == (1, 1)


def nothing_left(cluster: Cluster) -> bool:
    """No lease and no chunk in the ledger is left (both are hashes)."""
    return cluster.raw.hlen(keys.LEASES) == 0 and cluster.raw.hlen(keys.LEDGER) == 0


def test_a_partition_mid_map_loses_nothing_and_late_results_change_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The victim is cut off, not dead: its jobs run on and end while the others take
    them over. Healed while a re-run is still going, it delivers its stale outcomes
    then; they must change nothing, not even end the re-run early."""
    client = cluster.client
    ledger, release = tmp_path / "ledger", tmp_path / "release"
    once, jids, tags = start_map_with_a_non_restartable_job(client, ledger, 5.0, release)
    victim, there = wait_for(lambda: host_full_with(ledger, "once"), 30, "a full host")
    (cut_short,) = [t for t in there if t != "once"]
    host = cluster.net.hosts[victim]
    cluster.net.partition(host)
    cut = time.time()
    survivors = set(HOSTS) - {victim}

    # The others notice the lapsed leases and take over; the victim's runs go on.
    with pytest.raises(CloudException) as lost:
        client.result(once, timeout=60)
    assert lost.value.status == "error" and LEASE_LAPSED in lost.value.parameter
    wait_for(lambda: len(starts(ledger).get(cut_short, [])) == 2, 60, "the re-run to start")
    rerun_host = starts(ledger)[cut_short][1]
    assert rerun_host in survivors
    wait_for(
        lambda: not [t for t, h in running(ledger) if h == victim], 30, "the victim's runs to end"
    )
    assert cluster.workers[victim].proc.poll() is None  # type: ignore[union-attr]
    seen = cluster.registration(victim)
    assert seen is not None and seen["seen"] <= cut  # nothing of the victim's got through
    fields = ["status", "attempts", "worker", "exception"]
    before = client.info([*jids, once], fields)
    rerun = jids[tags.index(cut_short)]
    assert before[rerun]["status"] == "processing"
    assert before[rerun]["worker"].startswith(f"{rerun_host}:")

    healed = time.time()
    cluster.net.heal(host)

    def victim_idle_again() -> bool:
        doc = cluster.registration(victim)
        return doc is not None and doc["seen"] > healed + 0.5 and doc["busy"] == 0

    # Its runners deliver their late outcomes (under stale attempt tokens), then end.
    wait_for(victim_idle_again, 60, "the victim to record its late outcomes and be idle")
    now = client.info([*jids, once], fields)
    for jid in [*jids, once]:
        if jid == rerun or before[jid]["status"] in ("done", "error"):
            assert now[jid] == before[jid], jid  # the re-run, too, is still running
        else:  # a survivor's run of it, going on meanwhile
            assert not (now[jid]["worker"] or "").startswith(f"{victim}:"), (jid, now[jid])
    release.touch()  # the re-run may end now

    results = client.result(jids, timeout=90)
    assert [r["tag"] for r in results] == tags
    assert {r["host"] for r in results} == survivors
    assert results[tags.index(cut_short)]["host"] == rerun_host
    assert client.status(once) == "error"
    assert_recovered(client, ledger, victim, cut_short, jids, tags, results)

    # Back on the network, the victim is a worker like the others again.
    def victim_takes_part() -> bool:
        probe = client.map(where, [0.3] * 6, [f"p{i}" for i in range(6)])
        return victim in {r["host"] for r in client.result(probe, timeout=30)}

    wait_for(victim_takes_part, 60, "the healed host to run jobs again", interval=0.5)
    wait_for(lambda: nothing_left(cluster), 15, "no lease and no unfinished chunk left")


CLIENT_PROGRAM = r'''
"""A user's program on the client host: waits on jobs (notices only), then kills one."""
import json
import os
import socket
import sys
import time

import cloud
from picloud_compat.client import session
from picloud_compat.settings import Settings


def stamp(seconds):
    import socket
    import time

    time.sleep(seconds)
    return {"host": socket.gethostname(), "ended": time.time()}


def until_killed(pidfile, marker, seconds):
    import os
    import socket
    import time

    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {socket.gethostname()}")
    os.rename(pidfile + ".tmp", pidfile)
    time.sleep(seconds)
    with open(marker, "w") as f:
        f.write("not killed")
    return "not killed"


url, signing_key, workdir = sys.argv[1:4]
client = session.cluster_client(Settings(server_url=url, signing_key=signing_key), "remote")
session.set_client(client)
# The waiters' safety net re-reads statuses every second; switched off, only the
# completion notices pushed to this host can end a wait.
client.hub.recheck = lambda pending: None
out = {"host": socket.gethostname(), "latencies": [], "hosts": []}
for seconds in (0.3, 0.6, 0.9):
    r = cloud.result(cloud.call(stamp, seconds), timeout=30)
    out["latencies"].append(time.time() - r["ended"])
    out["hosts"].append(r["host"])
jids = cloud.map(stamp, [0.5] * 6)
cloud.join(jids, timeout=30)
joined = time.time()
rs = cloud.result(jids, timeout=30)
out["latencies"].append(joined - max(r["ended"] for r in rs))
out["hosts"] += [r["host"] for r in rs]

pidfile, marker = os.path.join(workdir, "pid"), os.path.join(workdir, "marker")
jid = cloud.call(until_killed, pidfile, marker, 3.0)
deadline = time.monotonic() + 30
while not os.path.exists(pidfile) and time.monotonic() < deadline:
    time.sleep(0.02)
pid, host = open(pidfile).read().split()
out["kill"] = {"pid": int(pid), "host": host, "status_before": cloud.status(jid)}
out["kill"]["at"] = time.time()
cloud.kill(jid)
try:
    cloud.result(jid, timeout=10)
    out["kill"]["raised"] = None
except cloud.CloudException as exc:
    out["kill"]["raised"] = exc.status
out["kill"]["status"] = cloud.status(jid)
out["kill"]["took"] = time.time() - out["kill"]["at"]
out["after"] = cloud.result(cloud.call(stamp, 0.1), timeout=30)["host"]
print(json.dumps(out))
'''


def test_a_client_on_another_host_gets_notices_and_kills(cluster: Cluster, tmp_path: Path) -> None:
    program = tmp_path / "user_program.py"
    program.write_text(CLIENT_PROGRAM)
    workdir = tmp_path / "user"
    workdir.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [
            *cluster.client_host.prefix(),
            *(sys.executable, str(program), cluster.server.url, SIGNING_KEY, str(workdir)),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["host"] == "client"
    assert set(out["hosts"]) <= set(HOSTS) and len(out["hosts"]) == 9
    # Woken by notices alone, within a fraction of the 1 s status re-check.
    assert max(out["latencies"]) < 0.5, out["latencies"]

    kill = out["kill"]
    assert kill["host"] in HOSTS and kill["status_before"] == "processing"
    assert (kill["raised"], kill["status"]) == ("killed", "killed")
    assert kill["took"] < 2, kill
    # The process running it on the remote host was stopped, and its pool replaced.
    wait_for(lambda: not alive(kill["pid"]), 10, "the killed job's process to go")
    worker = cluster.workers[kill["host"]]

    def pool() -> list[int]:
        return [pid for pid in worker.children() if alive(pid)]

    wait_for(lambda: len(pool()) == 2, 20, "the pool to be whole again")
    assert kill["pid"] not in pool()
    assert out["after"] in HOSTS
    time.sleep(max(0.0, kill["at"] + 3.5 - time.time()))  # past the end of its sleep
    assert not (workdir / "marker").exists()
