"""Every job starts clean: two tenants share ONE prefork pool process, and what a job of
tenant A leaves behind never reaches the next job of tenant B.

Each test has A's job misbehave on purpose, then runs B's jobs in the same process (or
in its replacement, when A damaged it beyond repair) and checks what B sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from picloud_compat.client.jobs import Client
from picloud_compat.client.session import cluster_client
from picloud_compat.settings import Settings
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer, Worker

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


# -- jobs (shipped by value: the worker cannot import this module) ----------------------


def pid() -> int:
    return os.getpid()


def close_stdout() -> int:
    sys.stdout.close()
    return os.getpid()


def print_flushed(i: int) -> str:
    print(f"b line {i}", flush=True)
    return f"ok {i}"


def leave_a_chatty_thread(marker: str) -> int:
    def chatter() -> None:
        while True:
            print(marker, flush=True)
            time.sleep(0.01)

    threading.Thread(target=chatter, daemon=True).start()
    time.sleep(0.05)
    return os.getpid()


def leave_children(path: str) -> int:
    child = subprocess.Popen(["sleep", "300"])
    # a grandchild that daemonizes (double fork): re-parented to the job process
    grand = subprocess.Popen(
        ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE, text=True
    )
    grandchild = int(grand.communicate()[0].strip())
    Path(path).write_text(f"{child.pid} {grandchild}")
    return os.getpid()


def alive(pids: list[int]) -> list[bool]:
    out = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                out.append(f.read().split()[2] != "Z")
        except FileNotFoundError:
            out.append(False)
    return out


def set_alarm_and_handlers() -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.alarm(2)
    signal.setitimer(signal.ITIMER_VIRTUAL, 1.0)
    return os.getpid()


def signal_state() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
        "sigusr1": repr(signal.getsignal(signal.SIGUSR1)),
        "itimer": signal.getitimer(signal.ITIMER_VIRTUAL),
    }


def sleep_past_alarm() -> dict[str, object]:
    time.sleep(3)
    return signal_state()


def change_process_state(tmp: str) -> int:
    os.chdir(tmp)
    os.environ["TENANT_A_SECRET"] = "a-secret"
    os.environ.pop("PATH", None)
    sys.path.insert(0, "/tenant-a/modules")
    sys.setrecursionlimit(500)
    return os.getpid()


def process_state() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "secret": os.environ.get("TENANT_A_SECRET"),
        "has_path": "PATH" in os.environ,
        "sys_path_a": "/tenant-a/modules" in sys.path,
        "recursion": sys.getrecursionlimit(),
    }


def write_below_python(big: int) -> int:
    os.write(1, b"raw fd write\n")
    subprocess.run(["echo", "from a child process"], check=True)
    subprocess.run(["sh", "-c", "echo to stderr >&2"], check=True)
    if big:
        os.write(1, b"x" * big)
    print("python-level line")
    return os.getpid()


def leave_a_chatty_child() -> int:
    subprocess.Popen(["sh", "-c", "while :; do echo A-CHILD-LEAK; done"])
    time.sleep(0.05)
    return os.getpid()


def break_the_cleanup() -> int:
    sys.__stderr__ = None  # the clean-up itself trips over this
    os.environ["A_LEFTOVER"] = "1"
    return os.getpid()


def block_signals_and_start_a_raw_thread(raw: bool) -> int:
    import _thread

    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGUSR2])

    def linger() -> None:
        time.sleep(30)

    if raw:
        _thread.start_new_thread(linger, ())
    return os.getpid()


def signal_mask() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "leftover": os.environ.get("A_LEFTOVER"),
    }


def lower_resource_limits(hard_too: bool) -> int:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # below the baseline
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))
    # set through a thread's id: the kernel applies it to the whole process
    fsize_hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    setter = threading.Thread(
        target=lambda: resource.prlimit(
            threading.get_native_id(), resource.RLIMIT_FSIZE, (1 << 20, fsize_hard)
        )
    )
    setter.start()
    setter.join()
    if hard_too:  # without CAP_SYS_RESOURCE the process can never raise it again
        resource.prlimit(0, resource.RLIMIT_CORE, (0, 0))
    return os.getpid()


def resource_limits() -> dict[str, object]:
    import resource

    return {
        "pid": os.getpid(),
        "euid": os.geteuid(),
        **{
            name: resource.getrlimit(getattr(resource, name))
            for name in ("RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_AS", "RLIMIT_FSIZE")
        },
    }


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Path]]:
    """A private Redis and one Celery worker with ONE pool process for both tenants."""
    ensure_redis_server()
    tmp = tmp_path_factory.mktemp("hygiene")
    server = RedisServer(tmp)
    server.start()
    worker = Worker(server.url, SIGNING_KEY, tmp, concurrency=1)
    worker.start()
    yield worker, tmp
    worker.stop()
    server.stop()


@pytest.fixture
def tenants(shared_process: tuple[Worker, Path]) -> Iterator[tuple[Client, Client]]:
    worker, _ = shared_process
    settings = Settings(server_url=worker.redis_url, signing_key=SIGNING_KEY)
    a = cluster_client(settings, f"a{time.monotonic_ns() % 10**9}")
    b = cluster_client(settings, f"b{time.monotonic_ns() % 10**9}")
    yield a, b
    for c in (a, b):
        c.close()


def worker_log(shared_process: tuple[Worker, Path]) -> str:
    return shared_process[0].log.read_text(errors="replace")


# -- tests ------------------------------------------------------------------------------


def test_closing_stdout_does_not_break_the_next_tenants_output(tenants):
    a, b = tenants
    a_pid = a.result(a.call(close_stdout), timeout=60)
    jids = b.map(print_flushed, range(20))
    assert b.result(jids, timeout=60) == [f"ok {i}" for i in range(20)]
    outputs = b.info(jids, ["stdout"])
    assert all(outputs[j]["stdout"] == f"b line {i}\n" for i, j in enumerate(jids))
    assert a_pid  # A's job itself finished normally


def test_a_leftover_thread_never_writes_into_the_next_job_and_the_process_is_replaced(
    tenants, shared_process
):
    a, b = tenants
    marker = f"A-THREAD-{time.monotonic_ns()}"
    jid = a.call(leave_a_chatty_thread, marker)
    a_pid = a.result(jid, timeout=60)
    assert a.status(jid) == "done"  # A's own job is not penalized
    b_jids = [b.call(print_flushed, i) for i in range(5)]
    assert b.result(b_jids, timeout=60) == [f"ok {i}" for i in range(5)]
    for entry in b.info(b_jids, ["stdout"]).values():
        assert marker not in entry["stdout"]
    assert b.result(b.call(pid), timeout=60) != a_pid  # a fresh process serves B
    assert "replacing this pool process" in worker_log(shared_process)


def test_child_processes_end_with_the_job(tenants, tmp_path):
    a, _ = tenants
    record = tmp_path / "children"
    a.result(a.call(leave_children, str(record)), timeout=60)
    pids = [int(p) for p in record.read_text().split()]
    deadline = time.monotonic() + 10
    while any(alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(pids) == [False, False]  # the child and the daemonized grandchild


def test_alarms_timers_and_signal_handlers_do_not_carry_over(tenants):
    a, b = tenants
    before = b.result(b.call(signal_state), timeout=60)
    a_pid = a.result(a.call(set_alarm_and_handlers), timeout=60)
    jid = b.call(sleep_past_alarm)
    seen = b.result(jid, timeout=60)
    assert seen["pid"] == a_pid  # same process, and the pending alarm did not kill B
    assert b.info(jid, ["attempts"])[jid]["attempts"] == 1
    assert seen == before  # handlers and timers as they were before A's job


def test_cwd_environment_path_and_recursion_limit_are_restored(tenants, tmp_path):
    a, b = tenants
    before = b.result(b.call(process_state), timeout=60)
    a_pid = a.result(a.call(change_process_state, str(tmp_path)), timeout=60)
    after = b.result(b.call(process_state), timeout=60)
    assert after["pid"] == a_pid == before["pid"]
    assert after == before  # cwd, variables, sys.path, recursion limit: as before A
    assert after["secret"] is None and after["has_path"] is True


def test_output_below_python_is_captured_per_job_and_capped(tenants, shared_process):
    a, b = tenants
    jid = a.call(write_below_python, 0)
    a.result(jid, timeout=60)
    out = a.info(jid, ["stdout", "stderr"])[jid]
    for line in ("raw fd write", "from a child process", "python-level line"):
        assert line in out["stdout"]
    assert "to stderr" in out["stderr"]
    log = worker_log(shared_process)
    assert "raw fd write" not in log and "from a child process" not in log
    big = a.call(write_below_python, 5 * 1024 * 1024)
    a.result(big, timeout=60)
    stored = a.info(big, ["stdout"])[big]["stdout"]
    assert len(stored) <= a.settings.output_limit
    assert "x" * 1000 in stored
    # and B's next job starts with empty streams
    b_jid = b.call(print_flushed, 1)
    b.result(b_jid, timeout=60)
    assert b.info(b_jid, ["stdout"])[b_jid]["stdout"] == "b line 1\n"


def test_a_leftover_childs_output_never_reaches_the_next_job(tenants):
    a, b = tenants
    for _ in range(3):
        a.result(a.call(leave_a_chatty_child), timeout=60)
        b_jid = b.call(print_flushed, 7)
        b.result(b_jid, timeout=60)
        assert b.info(b_jid, ["stdout"])[b_jid]["stdout"] == "b line 7\n"


def test_a_job_that_breaks_the_cleanup_gets_its_process_replaced(tenants):
    a, b = tenants
    a_pid = a.result(a.call(break_the_cleanup), timeout=60)
    seen = b.result(b.call(signal_mask), timeout=60)
    assert seen["pid"] != a_pid and seen["leftover"] is None
    before = seen["blocked"]
    # the signal mask is restored; a raw `_thread` thread is noticed like any other
    a_pid = a.result(a.call(block_signals_and_start_a_raw_thread, False), timeout=60)
    seen = b.result(b.call(signal_mask), timeout=60)
    assert seen["pid"] == a_pid and seen["blocked"] == before
    a_pid = a.result(a.call(block_signals_and_start_a_raw_thread, True), timeout=60)
    assert b.result(b.call(signal_mask), timeout=60)["pid"] != a_pid


def test_resource_limits_a_job_set_do_not_carry_over(tenants):
    a, b = tenants

    def limits() -> dict[str, object]:
        seen = b.result(b.call(resource_limits), timeout=60)
        return {k: v for k, v in seen.items() if k != "pid"} | {"pid": seen["pid"]}

    before = limits()
    a_pid = a.result(a.call(lower_resource_limits, False), timeout=60)
    assert limits() == before  # soft limits: restored, in the same process
    assert a_pid == before["pid"]
    a.result(a.call(lower_resource_limits, True), timeout=60)
    after = limits()
    # a lowered hard limit is raised again where the process may (CAP_SYS_RESOURCE);
    # where it may not, the process is replaced
    assert after | {"pid": 0} == before | {"pid": 0}
