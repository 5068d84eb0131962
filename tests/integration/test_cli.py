"""The `picloud` command against a real cluster (and exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SIGNING_KEY

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture
def picloud(tmp_path, account, redis_server, s3_server, worker):  # type: ignore[no-untyped-def]
    api_key, secret, _ = account
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.update(PICLOUD_CONFIG_DIR=str(tmp_path / "conf"), PICLOUD_S3_ENDPOINT_URL=s3_server.url)

    def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "picloud_compat.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check is not None:
            assert proc.returncode == check, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    run(
        "setup",
        "--api-key",
        api_key,
        "--api-secretkey",
        secret,
        "--server-url",
        redis_server.url,
        "--signing-key",
        SIGNING_KEY,
    )
    conf = tmp_path / "conf" / "cloudconf.py"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    return run


def test_jobs_commands(picloud, account):
    _, _, client = account
    from tests import jobfuncs as jf

    jids = [client.call(jf.add, i, 1, _label="cli") for i in range(3)]
    bad = client.call(jf.fail, "broken")
    spec = f"{jids[0]}-{jids[-1]}"
    out = picloud("-o", "json", "result", spec, "-t", "60").stdout
    assert json.loads(out) == {str(j): i + 1 for i, j in enumerate(jids)}
    assert picloud("status", str(jids[0])).stdout.split() == [str(jids[0]), "done"]
    info = json.loads(picloud("-o", "json", "info", str(jids[1]), "-f", "status,label").stdout)
    assert info[str(jids[1])] == {"status": "done", "label": "cli"}
    listed = json.loads(picloud("-o", "json", "list", "--label", "cli").stdout)
    assert listed == jids
    failed = picloud("result", str(bad), "-t", "60", check=3)
    assert "CloudException" in failed.stderr and "broken" in failed.stderr
    picloud("delete", str(jids[0]))
    assert picloud("status", str(jids[0]), check=3).returncode == 3
    assert picloud("status", "1-x", check=1).returncode == 1

    slow = client.call(jf.sleep, 30)
    picloud("kill", str(slow))
    assert client.status(slow) == "killed"


def test_files_commands(picloud, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hi there")
    assert picloud("files", "put", str(src), "docs/hello.txt").stdout.strip() == "docs/hello.txt"
    assert json.loads(picloud("-o", "json", "files", "list").stdout) == ["docs/hello.txt"]
    picloud("files", "get", "docs/hello.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "hi there"
    picloud("files", "delete", "docs/hello.txt")
    assert picloud("files", "delete", "docs/hello.txt", check=1).returncode == 1


def test_cron_and_rest_commands(picloud, account):
    _, _, client = account
    picloud("cron", "register", "hello", "0 0 1 1 *", "echo", "from-cron")
    assert json.loads(picloud("-o", "json", "cron", "list").stdout) == ["hello"]
    assert "0 0 1 1 *" in picloud("cron", "info", "hello").stdout
    jid = int(picloud("cron", "run", "hello").stdout)
    assert client.result(jid, timeout=60) == "from-cron\n"
    picloud("cron", "deregister", "hello")
    assert picloud("cron", "info", "hello", check=3).returncode == 3

    from picloud_compat.rest.registry import RestRegistry
    from tests import jobfuncs as jf

    RestRegistry(client).publish(jf.add, "adder")
    assert json.loads(picloud("-o", "json", "rest", "list").stdout) == ["adder"]
    assert json.loads(picloud("-o", "json", "rest", "info", "adder").stdout)["signature"][
        "required"
    ] == ["a"]


def test_env_commands(picloud, account, tmp_path):  # type: ignore[no-untyped-def]
    _, _, client = account
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("inflection==0.5.1  # plurals\n\n")
    picloud("env", "create", "words", "-r", str(requirements), "--description", "plurals")
    assert json.loads(picloud("-o", "json", "env", "list").stdout) == ["words"]
    assert "inflection==0.5.1" in picloud("env", "info", "words").stdout
    jid = client.call(_plural, "mouse", _env="words")
    assert client.result(jid, timeout=240) == "mice"
    picloud("env", "delete", "words")
    assert "no environment named 'words'" in picloud("env", "info", "words", check=3).stderr
    requirements.write_text("-r other.txt\n")
    assert "pip options" in picloud("env", "create", "x", "-r", str(requirements), check=1).stderr


def _plural(word: str) -> str:
    import inflection

    return str(inflection.pluralize(word))


def test_worker_command_serves_its_type(tmp_path):
    """`picloud worker --type m1` consumes m1 (and only m1), on a Redis of its own."""
    from picloud_compat.client.session import cluster_client
    from picloud_compat.settings import Settings
    from tests import jobfuncs as jf
    from tests.harness import RedisServer, wait_for

    redis_server = RedisServer(tmp_path)
    redis_server.start()

    env = dict(os.environ, PICLOUD_SERVER_URL=redis_server.url, PICLOUD_SIGNING_KEY=SIGNING_KEY)
    env.pop("PYTHONPATH", None)
    log = open(tmp_path / "w.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "picloud_compat.cli",
            "worker",
            "--type",
            "m1",
            "-c",
            "1",
            "-n",
            "m1w@%h",
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = cluster_client(Settings(server_url=redis_server.url, signing_key=SIGNING_KEY), "cliw")
    try:
        import redis

        r = redis.from_url(redis_server.url)
        wait_for(lambda: any(b"m1" in v for v in r.hvals("pc:workers")), 30, "the m1 worker")
        assert client.result(client.call(jf.add, 20, 22, _type="m1"), timeout=60) == 42
        other = client.call(jf.add, 1, 1, _type="c2")
        with pytest.raises(client_timeout()):
            client.result(other, timeout=2)  # no c2 worker: it stays queued
    finally:
        client.hub.close()
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
        redis_server.stop()


def client_timeout():
    from picloud_compat.errors import CloudTimeoutError

    return CloudTimeoutError


def test_keys_commands_administer_api_keys(tmp_path, redis_server, cluster_settings):
    """`picloud keys create|list|info|deactivate|activate`: the first key needs no API key."""
    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.errors import InvalidCredentials
    from picloud_compat.store.redis import RedisStore

    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.update(
        PICLOUD_CONFIG_DIR=str(tmp_path / "conf"),
        PICLOUD_SERVER_URL=redis_server.url,
        PICLOUD_SIGNING_KEY=SIGNING_KEY,
    )

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "picloud_compat.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    created = json.loads(keys("-o", "json", "keys", "create", "--note", "ci").stdout)
    api_key, secret = created["api_key"], created["api_secretkey"]
    listed = json.loads(keys("-o", "json", "keys", "list").stdout)
    mine = [k for k in listed if k["api_key"] == api_key]
    assert len(mine) == 1 and mine[0]["note"] == "ci" and mine[0]["active"] is True
    assert api_key in keys("keys", "info", api_key).stdout
    store = RedisStore.from_url(redis_server.url, cluster_settings)
    registry = AccountRegistry(store, cluster_settings)
    registry.authenticate(api_key, secret)  # the printed secret is the key's
    keys("keys", "deactivate", api_key)
    with pytest.raises(InvalidCredentials):
        registry.authenticate(api_key, secret)
    assert api_key not in keys("keys", "list", "--active").stdout
    keys("keys", "activate", api_key)
    registry.authenticate(api_key, secret)
    store.close()


def test_usage_counts_jobs_and_cpu_per_key_and_day(
    tmp_path, worker, redis_server, cluster_settings
):  # type: ignore[no-untyped-def]
    """`picloud usage`: what each key ran today, from the counters the store keeps."""
    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.store.records import utc_day
    from picloud_compat.store.redis import RedisStore
    from tests import jobfuncs as jf
    from tests.conftest import make_cluster_client

    store = RedisStore.from_url(redis_server.url, cluster_settings)
    api_key, _ = AccountRegistry(store, cluster_settings).create_key("usage")
    store.close()
    client = make_cluster_client(cluster_settings, api_key)
    try:
        client.result(client.map(jf.burn_cpu, [0.2, 0.2, 0.2]), timeout=60)
        client.result(client.map(jf.add, range(5), range(5)), timeout=60)
    finally:
        client.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.update(
        PICLOUD_CONFIG_DIR=str(tmp_path / "conf"),
        PICLOUD_SERVER_URL=redis_server.url,
        PICLOUD_SIGNING_KEY=SIGNING_KEY,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "picloud_compat.cli", "-o", "json", "usage", api_key],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    today = json.loads(proc.stdout)[api_key][utc_day()]
    assert today["jobs"] == 8 and today["cpu_seconds"] >= 0.5
    text = subprocess.run(
        [sys.executable, "-m", "picloud_compat.cli", "usage", api_key],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"{api_key}\t{utc_day()}\t8 jobs" in text
