"""`cloud.cron`, `cloud.rest` and `cloud.account` on the embedded simulator (no server).

Each test starts its own simulator the way a user's script does (the default client),
so the cron clock and the loopback gateway are the ones a script gets.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from picloud_compat.client import session
from picloud_compat.settings import Settings
from tests import jobfuncs as jf
from tests.harness import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def simulated(tmp_path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """`cloud` on a fresh simulator of its own, as in a user's script."""
    import cloud

    client = session.simulator_client(
        Settings(num_procs=2, admin_password="sim-admin", files_dir=str(tmp_path / "files"))
    )
    previous = session.set_client(client)
    yield cloud
    session.set_client(previous)
    client.close()


def test_cron_fires_on_its_schedule(simulated, tmp_path):
    cloud = simulated
    log = tmp_path / "ticks"
    label = cloud.cron.register(lambda: jf.tick(str(log)), "every-second", "* * * * * *")
    assert cloud.cron.list() == [label]
    # 6 fields: the last is seconds; the clock serves each scheduled time once
    wait_for(lambda: log.exists() and log.read_text().count("tick") >= 2, 15, "two firings")
    info = cloud.cron.info(label)
    assert info["schedule"] == "* * * * * *"
    assert info["last_jid"] is not None
    assert cloud.result(info["last_jid"], timeout=30) == "ticked"
    cloud.cron.deregister(label)
    time.sleep(1.5)  # a firing already submitted may still land
    settled = log.read_text().count("tick")
    time.sleep(2.5)
    assert log.read_text().count("tick") == settled  # no firing after deregister
    assert cloud.cron.list() == []


def test_cron_manual_run_and_errors(simulated):
    cloud = simulated
    cloud.cron.register(jf.noop, "nightly", "30 2 * * mon-fri")
    jid = cloud.cron.manual_run("nightly")
    assert cloud.result(jid, timeout=30) is None
    with pytest.raises(ValueError, match="already exists"):
        cloud.cron.register(jf.noop, "nightly", "0 * * * *")
    with pytest.raises(ValueError, match="5 fields"):
        cloud.cron.register(jf.noop, "bad", "* *")
    with pytest.raises(cloud.CloudException, match="no cron named"):
        cloud.cron.info("missing")


def test_rest_publish_serves_the_function_on_loopback(simulated):
    cloud = simulated
    url = cloud.rest.publish(jf.greet, "greet")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/r/greet")
    base = url.rsplit("/r/", 1)[0]
    assert cloud.rest.list() == ["greet"]
    assert cloud.rest.info("greet")["signature"]["required"] == ["name"]
    with httpx.Client(base_url=base, timeout=30) as http:
        jid = http.post("/r/greet", json={"name": "ada"}).json()["jid"]
        assert cloud.result(jid, timeout=30) == "hello ada!"
        body = http.get(f"/job/{jid}/result").json()
        assert body == {"jid": jid, "result": "hello ada!"}
        bad = http.post("/r/greet", json={"nom": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_arguments"
    cloud.rest.remove("greet")
    assert cloud.rest.list() == []


def test_rest_endpoint_is_usable_from_curl(simulated):
    cloud = simulated
    url = cloud.rest.publish(jf.greet, "hello")
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"name": "curl", "punctuation": "?"}),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    jid = json.loads(out.stdout)["jid"]
    assert cloud.result(jid, timeout=30) == "hello curl?"


def test_account_keys_on_the_simulator(simulated):
    cloud = simulated
    created = cloud.account.create_key("admin", "sim-admin", note="laptop")
    key = created["api_key"]
    assert created["api_secretkey"] and created["active"] is True
    assert key in cloud.account.list_keys("admin", "sim-admin")
    assert cloud.account.get_key("admin", "sim-admin", key)["note"] == "laptop"
    cloud.account.deactivate_key("admin", "sim-admin", key)
    assert cloud.account.list_keys("admin", "sim-admin", active_only=True) == []
    cloud.account.activate_key("admin", "sim-admin", key)
    with pytest.raises(cloud.CloudException, match="invalid admin"):
        cloud.account.list_keys("admin", "wrong")


def test_crons_and_endpoints_saved_in_the_older_format_still_run(simulated):
    """Records saved before job specs had their own name kept them under "options"."""
    from picloud_compat.client import session as sessions

    cloud = simulated
    client = sessions.get_client()
    cloud.cron.register(jf.noop, "legacy", "0 3 * * *")
    cloud.rest.publish(jf.greet, "legacy-rest")
    for kind, label in (("cron", "legacy"), ("rest", "legacy-rest")):
        record = client.store.record(client.tenant, kind, label)
        record["options"] = record.pop("spec")
        blob = client.store.record_function(client.tenant, kind, label)
        client.store.save_record(client.tenant, kind, label, record, blob, replace=True)
    assert cloud.result(cloud.cron.manual_run("legacy"), timeout=30) is None
    url = cloud.rest.info("legacy-rest")["uri"]
    jid = httpx.post(url, json={"name": "old"}, timeout=30).json()["jid"]
    assert cloud.result(jid, timeout=30) == "hello old!"


def test_the_simulator_clock_never_fires_a_slot_from_before_registration(simulated):
    """A daily cron registered after today's slot waits for tomorrow, as with RedBeat."""
    from datetime import UTC, datetime

    from picloud_compat.client import session as sessions
    from picloud_compat.cron.clock import CronClock

    cloud = simulated
    client = sessions.get_client()
    now = datetime.now(UTC)
    slot = f"{now.minute} {now.hour} * * *"  # this minute: its slot is already past
    cloud.cron.register(jf.noop, "daily", slot)
    clock = CronClock(client.store, lambda _t: client)
    clock.started_at = datetime(2000, 1, 1, tzinfo=UTC)  # as if running for ages
    assert clock.tick(datetime.now(UTC)) == []
    assert cloud.cron.info("daily")["last_jid"] is None


def test_closing_the_simulator_fails_waits_in_other_threads(simulated):
    """A closed simulator runs no more jobs: a wait in another thread must fail at once,
    with or without a timeout, instead of hanging (the one without did, for ever)."""
    import threading

    cloud = simulated
    jid = cloud.call(jf.sleep, 30, "late")
    outcomes: dict[object, BaseException | object] = {}

    def wait(timeout: object) -> None:
        try:
            outcomes[timeout] = cloud.result(jid, timeout=timeout)
        except BaseException as exc:
            outcomes[timeout] = exc

    threads = [threading.Thread(target=wait, args=(t,), daemon=True) for t in (None, 60)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    session.get_client().close()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    for outcome in outcomes.values():
        assert isinstance(outcome, cloud.CloudException)
        assert "closed" in str(outcome)


def test_setkey_without_a_server_goes_on_with_the_running_simulator(simulated):
    """A key made with cloud.account on the simulator is checked and acted as there (the
    simulator, its jobs and its keys go on); a key it never issued (a PiCloud script's
    own) runs as the simulator's tenant, as PiCloud's simulator ignored credentials."""
    from picloud_compat.errors import InvalidCredentials, UnknownJobError

    cloud = simulated
    earlier = int(cloud.map(jf.add, [0, 0, 1], [0, 0, 2])[-1])  # jid 3 of its tenant
    assert cloud.result(earlier, timeout=60) == 3
    created = cloud.account.create_key("admin", "sim-admin")
    key, secret = created["api_key"], created["api_secretkey"]
    try:
        cloud.setkey(key, "not its secret")
        with pytest.raises(InvalidCredentials):
            cloud.call(jf.noop)
        cloud.setkey(key, secret)
        assert cloud.is_simulated() is True
        assert cloud.result(cloud.call(jf.add, 2, 3), timeout=60) == 5
        with pytest.raises(UnknownJobError):
            cloud.status(earlier)  # the simulator tenant's job: this key has one job
        assert cloud.account.get_key("admin", "sim-admin", key)["active"] is True
        cloud.account.deactivate_key("admin", "sim-admin", key)
        cloud.setkey(key, secret, restart=True)
        with pytest.raises(InvalidCredentials):
            cloud.call(jf.noop)
        cloud.setkey("4242", "a PiCloud secret")
        assert cloud.result(earlier, timeout=60) == 3  # the same simulator, as before
    finally:
        session.forget_cluster()


def test_switching_keys_on_the_simulator_leaves_the_other_keys_waits_running(simulated):
    """Waits, iresults and callbacks on key A's jobs go on after setkey(B), as the jobs
    do; start_simulator drops the key (the same simulator, as its own tenant); close
    stops the simulator setkey kept running."""
    import threading

    import psutil

    cloud = simulated
    local_job = int(cloud.call(jf.add, 40, 2))
    keys = [cloud.account.create_key("admin", "sim-admin") for _ in range(2)]
    (a, a_secret), (b, b_secret) = [(k["api_key"], k["api_secretkey"]) for k in keys]
    try:
        cloud.setkey(a, a_secret)
        fired: list[int] = []
        slow = cloud.call(jf.sleep, 1.5, "a's", _callback=[lambda j: fired.append(int(j))])
        results = cloud.iresult(cloud.map(jf.sleep, [0.5, 1.0], ["x", "y"]), timeout=60)
        outcomes: dict[str, object] = {}

        def wait() -> None:
            try:  # both begun as key A, before the switch
                outcomes["result"] = cloud.result(slow, timeout=60)
                outcomes["iresult"] = list(results)
            except BaseException as exc:
                outcomes["error"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(0.3)
        cloud.setkey(b, b_secret)  # switches keys twice while A's waiter waits
        assert cloud.result(cloud.call(jf.add, 1, 1), timeout=60) == 2
        cloud.setkey(b, b_secret, restart=True)
        waiter.join(30)
        assert outcomes == {"result": "a's", "iresult": ["x", "y"]}
        wait_for(lambda: fired == [int(slow)], 10, "A's callback")

        cloud.start_simulator()  # the key is dropped: the simulator's own tenant again
        assert cloud.result(local_job, timeout=60) == 42
        processes = [psutil.Process(p) for p in session.get_client().mode.cluster.pids()]
        assert processes  # the simulator's job processes
        cloud.setkey(a, a_secret)
        cloud.close()
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert alive == []
    finally:
        session.forget_cluster()


def test_closing_with_callbacks_pending_logs_no_failure(simulated, caplog):
    cloud = simulated
    cloud.call(jf.sleep, 5, _callback=[lambda: None])
    time.sleep(0.3)
    with caplog.at_level("WARNING"):
        cloud.close()
        time.sleep(1.5)  # the callbacks' waiting thread notices the close
    assert "waiting for callback jobs failed" not in caplog.text
