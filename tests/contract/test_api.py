"""The `cloud` API contract, run on the simulator and on the cluster (real Redis + Celery).

Each test gets its own tenant (API key), so jids start at 1 and tests cannot see each
other's jobs.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests import jobfuncs as jf

pytestmark = pytest.mark.timeout(120)


def test_call_and_result(cloud):
    jid = cloud.call(jf.add, 1, b=2)
    assert isinstance(jid, int)
    assert cloud.result(jid, timeout=30) == 3


def test_jids_start_at_one_per_tenant_and_increase(cloud):
    first = cloud.call(jf.noop)
    second = cloud.call(jf.noop)
    assert (first, second) == (1, 2)


def test_result_of_list_is_in_input_order(cloud):
    jids = [cloud.call(jf.square, x) for x in range(5)]
    assert cloud.result(list(reversed(jids)), timeout=30) == [16, 9, 4, 1, 0]
    assert cloud.result([]) == []


def test_map_pads_shorter_sequences_with_none(cloud):
    jids = cloud.map(jf.pair, [1, 2, 3], [10])
    assert cloud.result(jids, timeout=30) == [(1, 10), (2, None), (3, None)]


def test_map_of_many_keeps_order(cloud):
    jids = cloud.map(jf.square, range(600))
    assert jids == list(range(jids[0], jids[0] + 600))
    assert cloud.result(jids, timeout=60) == [x * x for x in range(600)]


def test_map_argument_errors(cloud):
    with pytest.raises(ValueError, match="at least 2 arguments"):
        cloud.map(jf.square)
    with pytest.raises(ValueError, match="Unexpected keyword argument foo"):
        cloud.map(jf.square, [1], foo=1)
    with pytest.raises(TypeError, match="not an iterable"):
        cloud.map(jf.square, 5)
    with pytest.raises(TypeError, match="not an iterable"):
        cloud.map(jf.square, "abc")
    with pytest.raises(TypeError, match="not callable"):
        cloud.map(5, [1])
    assert cloud.map(jf.square, []) == []


def test_call_checks_the_signature_before_submitting(cloud, client):
    with pytest.raises(TypeError, match="missing a required argument"):
        cloud.call(jf.pair, 1)
    with pytest.raises(TypeError, match="multiple values"):
        cloud.call(jf.pair, 1, 2, a=3)
    with pytest.raises(TypeError, match="not callable"):
        cloud.call(42)
    assert client.store.unfinished(client.tenant) == []
    assert cloud.call(jf.noop) == 1  # nothing was created before


def test_failed_job_raises_with_remote_traceback(cloud):
    jid = cloud.call(jf.fail, "kaboom")
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(jid, timeout=30)
    exc = info.value
    assert exc.jid == jid and exc.status == "error"
    assert "ValueError: kaboom" in exc.parameter
    assert "in fail" in exc.parameter  # the user's frame, from the worker
    assert str(exc).startswith(f"Job {jid}: ")
    assert cloud.status(jid) == "error"


def test_join_timeout(cloud):
    jid = cloud.call(jf.sleep, 3)
    start = time.monotonic()
    with pytest.raises(cloud.CloudTimeoutError) as info:
        cloud.join(jid, timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert isinstance(info.value, cloud.CloudException)
    assert info.value.status is None
    assert info.value.jid == [jid]
    cloud.join(jid, timeout=30)


def test_ignore_errors(cloud):
    ok, bad = cloud.call(jf.add, 1, 1), cloud.call(jf.fail)
    cloud.join([ok, bad], timeout=30, ignore_errors=True)
    values = cloud.result([ok, bad], timeout=30, ignore_errors=True)
    assert values[0] == 2
    assert isinstance(values[1], cloud.CloudException) and values[1].status == "error"


def test_iresult_yields_in_order_and_survives_an_error(cloud):
    jids = [cloud.call(jf.sleep, 0.3, "slow"), cloud.call(jf.fail), cloud.call(jf.noop, "after")]
    it = cloud.iresult(jids, timeout=30)
    assert next(it) == "slow"
    with pytest.raises(cloud.CloudException) as info:
        next(it)
    assert info.value.jid == jids[1]
    assert next(it) == "after"
    with pytest.raises(StopIteration):
        next(it)
    values = list(cloud.iresult(jids, ignore_errors=True, num_in_parallel=0))
    assert values[0] == "slow" and isinstance(values[1], cloud.CloudException)


def test_iresult_timeout_per_item(cloud):
    it = cloud.iresult([cloud.call(jf.sleep, 3)], timeout=0.3)
    with pytest.raises(cloud.CloudTimeoutError):
        next(it)


def test_status_forms_and_unknown_jids(cloud):
    jid = cloud.call(jf.noop)
    cloud.join(jid, timeout=30)
    assert cloud.status(jid) == "done"
    assert cloud.status([jid, jid]) == ["done", "done"]
    with pytest.raises(cloud.CloudException) as info:
        cloud.status(jid + 1000)
    assert info.value.jid == jid + 1000
    with pytest.raises(cloud.CloudException):
        cloud.result(jid + 1000, timeout=5)
    with pytest.raises(TypeError, match="must be integers"):
        cloud.status("1")


def test_info_defaults_fields_and_output(cloud):
    jid = cloud.call(jf.shout, "hello", _label="greeting", _priority=2)
    cloud.join(jid, timeout=30)
    default = cloud.info(jid)
    assert set(default[jid]) == {"stdout", "stderr", "status", "runtime"}
    assert default[jid]["stdout"] == "hello\n"
    assert default[jid]["stderr"] == "to stderr\n"
    assert default[jid]["runtime"] >= 0
    full = cloud.info([jid], "all")[jid]
    assert full["label"] == "greeting" and full["priority"] == 2
    assert full["function"].endswith("shout")
    assert full["created"] <= full["finished"]
    assert full["exception"] is None
    assert cloud.info(jid, "status") == {jid: {"status": "done"}}
    with pytest.raises(ValueError, match="unknown info field"):
        cloud.info(jid, "colour")


def test_profile(cloud):
    jid = cloud.call(jf.sum_primes, 2000, _profile=True)
    cloud.join(jid, timeout=30)
    assert "isprime" in cloud.info(jid, "profile")[jid]["profile"]


def test_dependencies_wait_then_run(cloud):
    parent = cloud.call(jf.sleep, 0.5, 5)
    child = cloud.call(jf.add, 1, _depends_on=parent)
    assert cloud.status(child) == "waiting"
    children = cloud.map(jf.square, [1, 2], _depends_on=[parent, child])
    assert cloud.result(children, timeout=30) == [1, 4]
    assert cloud.status([parent, child]) == ["done", "done"]


def test_failed_parent_stalls_descendants_transitively(cloud):
    parent = cloud.call(jf.sleep, 0.3, None)
    bad = cloud.call(jf.fail, _depends_on=parent)
    child = cloud.call(jf.noop, _depends_on=bad)
    grandchild = cloud.call(jf.noop, _depends_on=[child])
    tolerant = cloud.call(jf.noop, "ran", _depends_on=bad, _depends_on_errors="ignore")
    cloud.join([bad, tolerant], timeout=30, ignore_errors=True)
    cloud.join([child, grandchild], timeout=30, ignore_errors=True)
    assert cloud.status([bad, child, grandchild]) == ["error", "stalled", "stalled"]
    assert cloud.result(tolerant, timeout=30) == "ran"
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(grandchild)
    assert info.value.status == "stalled"
    assert "dependency erroring" in info.value.parameter
    late = cloud.call(jf.noop, _depends_on=bad)  # the parent already failed
    assert cloud.status(late) == "stalled"


def test_unknown_dependency_creates_nothing(cloud, client):
    with pytest.raises(cloud.CloudException):
        cloud.call(jf.noop, _depends_on=999)
    assert client.store.unfinished(client.tenant) == []


def test_kill_queued_waiting_and_finished_jobs(cloud):
    blocker = cloud.call(jf.sleep, 2)
    waiting = cloud.call(jf.noop, _depends_on=blocker)
    dependent = cloud.call(jf.noop, _depends_on=waiting)
    cloud.kill(waiting)
    assert cloud.status([waiting, dependent]) == ["killed", "stalled"]
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(waiting)
    assert info.value.status == "killed"
    cloud.kill([])  # a no-op
    done = cloud.call(jf.noop)
    cloud.join(done, timeout=30)
    cloud.kill(done)
    assert cloud.status(done) == "done"
    cloud.join(blocker, timeout=30)


def test_kill_everything(cloud):
    jids = [cloud.call(jf.sleep, 5) for _ in range(4)]
    cloud.kill()
    assert cloud.status(jids) == ["killed"] * 4


def test_delete(cloud):
    jid = cloud.call(jf.add, 2, 3)
    assert cloud.result(jid, timeout=30) == 5
    cloud.delete(jid)
    with pytest.raises(cloud.CloudException):
        cloud.status(jid)
    with pytest.raises(cloud.CloudException):
        cloud.result(jid, timeout=5)
    running = cloud.call(jf.sleep, 1)
    with pytest.raises(cloud.CloudException, match="unfinished"):
        cloud.delete(running)
    cloud.join(running, timeout=30)


def test_callbacks_fire_with_the_jid(cloud):
    seen: list[tuple[str, int]] = []
    fired = threading.Event()

    def on_ok(jid):
        seen.append(("ok", jid))

    def on_error(jid):
        seen.append(("error", jid))

    def no_args():
        seen.append(("noargs", 0))
        fired.set()

    ok = cloud.call(jf.noop, _callback=[on_ok, no_args])
    bad = cloud.call(jf.fail, _callback_on_error=on_error)
    assert fired.wait(30)
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(seen) == sorted([("ok", ok), ("noargs", 0), ("error", bad)])


def test_user_classes_and_module_globals_travel(cloud):
    jid = cloud.call(jf.make_point, 3, -4)
    point = cloud.result(jid, timeout=30)
    assert isinstance(point, jf.Point) and point.norm1() == 7
    assert cloud.result(cloud.call(jf.norm, jf.Point(1, 2)), timeout=30) == 3
    assert cloud.result(cloud.call(jf.scaled, 2), timeout=30) == 6


def test_lambda_and_closure_from_the_test(cloud):
    offset = 10
    assert cloud.result(cloud.call(lambda x: x + offset, 5), timeout=30) == 15


def test_unpicklable_argument_is_refused_before_submitting(cloud, client):
    lock = threading.Lock()
    with pytest.raises(cloud.CloudException, match="argument 1") as info:
        cloud.call(jf.pair, 1, [lock])
    assert "lock" in str(info.value).lower()
    assert client.store.unfinished(client.tenant) == []


def test_unpicklable_result_is_an_error(cloud):
    jid = cloud.call(jf.unpicklable_result)
    with pytest.raises(cloud.CloudException, match="could not serialize result") as info:
        cloud.result(jid, timeout=30)
    assert info.value.status == "error"
    assert cloud.result(cloud.call(jf.add, 1, 1), timeout=30) == 2  # the worker is fine


def test_excessive_data_is_refused(cloud, client):
    import dataclasses

    small = dataclasses.replace(client.settings, max_transmit_data=1000)
    client.codec.limit = small.max_transmit_data
    with pytest.raises(cloud.CloudException, match="Excessive data"):
        cloud.call(jf.noop, b"x" * 5000)
    assert client.store.unfinished(client.tenant) == []


def test_os_env_vars(cloud, monkeypatch):
    monkeypatch.setenv("PICLOUD_TEST_VAR", "from-client")
    a = cloud.call(jf.env, "PICLOUD_TEST_VAR", _os_env_vars=["PICLOUD_TEST_VAR"])
    b = cloud.call(jf.env, "OTHER_VAR", _os_env_vars={"OTHER_VAR": "bar"})
    assert cloud.result([a, b], timeout=30) == ["from-client", "bar"]


def test_kill_process_discards_the_interpreter(cloud):
    pids = cloud.result([cloud.call(jf.pid, _kill_process=True) for _ in range(2)], timeout=30)
    assert pids[0] != pids[1]
    assert cloud.result(cloud.call(jf.pid), timeout=30) not in pids


def test_kill_process_job_that_leaves_a_forked_child_finishes(cloud):
    """The child a `_kill_process` job forks and leaves holds the result pipe open: the
    job still finishes, the child is ended, and the process serves the next job."""
    import psutil

    jid = cloud.call(_fork_and_leave_a_child, _kill_process=True)
    value, child = cloud.result(jid, timeout=30)
    assert value == 42
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and time.monotonic() < deadline:
        if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    assert cloud.result(cloud.call(jf.add, 1, 2), timeout=30) == 3


def _fork_and_leave_a_child():
    import os
    import time

    child = os.fork()
    if child == 0:
        time.sleep(300)
        os._exit(0)
    return 42, child


def test_nested_jobs_deeper_than_the_pool(cloud):
    # each level waits on the next: 6 levels on 2 processes would deadlock a naive pool
    assert cloud.result(cloud.call(jf.nested_sum, 6), timeout=60) == 21


def test_running_on_cloud(cloud):
    assert cloud.running_on_cloud() is False
    assert cloud.result(cloud.call(_running_on_cloud), timeout=30) is True


def _running_on_cloud():
    import cloud

    return cloud.running_on_cloud()


def test_result_from_a_second_client(cloud, client, mode, request):
    """A process that did not submit the job still gets pushed completion."""
    from tests.conftest import make_cluster_client, make_simulator_client

    jid = cloud.call(jf.sleep, 0.5, "shared")
    if mode == "cluster":
        other = make_cluster_client(request.getfixturevalue("cluster_settings"), client.tenant)
    elif mode == "isolated":
        from picloud_compat.client.remote import remote_client

        other = remote_client(client.settings)  # the same key, another process's client
    else:
        other = make_simulator_client(request.getfixturevalue("local_cluster"), client.tenant)
    try:
        assert other.result(jid, timeout=30) == "shared"
    finally:
        other.hub.close()


def test_a_result_that_cannot_be_loaded_names_its_job(cloud):
    from picloud_compat.errors import ResultLoadError

    jids = [cloud.call(jf.square, 3), cloud.call(jf.worker_only_instance), cloud.call(jf.square, 4)]
    with pytest.raises(cloud.CloudException) as info:
        cloud.result(jids[1], timeout=60)
    assert info.value.jid == jids[1]
    assert "picloud_worker_only" in str(info.value)  # the missing module is named
    with pytest.raises(ResultLoadError):
        cloud.result(jids, timeout=60)
    values = cloud.result(jids, timeout=60, ignore_errors=True)
    assert values[0] == 9 and values[2] == 16
    assert isinstance(values[1], ResultLoadError) and values[1].jid == jids[1]
    it = cloud.iresult(jids)
    assert next(it) == 9
    with pytest.raises(ResultLoadError):
        next(it)
    assert next(it) == 16  # iteration goes on past it


def test_one_job_with_undecodable_text_fails_alone_in_a_map(cloud):
    """The map of 300 finishes: the odd job errors (its text escaped), every other job is
    done, and none ran twice (attempts stay 1)."""
    jids = cloud.map(jf.print_undecodable_name, range(300))
    values = cloud.result(jids, timeout=120, ignore_errors=True)
    assert [v for i, v in enumerate(values) if i != 150] == [i for i in range(300) if i != 150]
    odd = jids[150]
    assert cloud.status(odd) == "error"
    info = cloud.info(odd, ["stdout", "exception", "attempts"])[odd]
    assert "caf\\udce9.txt" in info["stdout"] and "caf\\udce9.txt" in info["exception"]
    attempts = [a["attempts"] for a in cloud.info(jids, ["attempts"]).values()]
    assert set(attempts) == {1}


def test_info_reports_cpu_time_and_accepts_picloud_resource_fields(cloud, mode):
    jid = cloud.call(jf.burn_cpu, 0.3)
    cloud.result(jid, timeout=60)
    fields = ["cputime.user", "cputime.system", "cpu_percentage", "memory.max_usage", "ports"]
    fields.append("memory.failcnt")
    entry = cloud.info(jid, fields)[jid]
    measured = {"cputime.user", "cputime.system", "cpu_percentage"}
    if mode == "isolated":  # executors run in memory cgroups: memory is measured per job
        measured |= {"memory.max_usage", "memory.failcnt"}
        assert 5_000_000 < entry["memory.max_usage"] < 300 * 1024 * 1024
        assert entry["memory.failcnt"] == 0
    assert set(entry) == measured  # the rest is left out
    assert entry["cputime.user"] + entry["cputime.system"] >= 0.25
    # a CPU-bound job is near 100 %; other processes on a loaded 2-core machine can take
    # half of that (the bounds catch a fraction given as a percentage, or the reverse)
    assert 20 <= entry["cpu_percentage"] <= 150
    assert "cputime.user" in cloud.info(jid, "all")[jid]
    with pytest.raises(ValueError, match="unknown info field"):
        cloud.info(jid, ["memory.bogus"])
