"""``picloud worker --env``: a worker builds its environments (a real package from PyPI,
with uv) before it takes a job, says so in its registration, and refuses to start, with
a clear message, for an environment it cannot serve."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from picloud_compat.client.session import cluster_client
from picloud_compat.environments.builder import READY
from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.settings import Settings
from tests.conftest import SIGNING_KEY, ensure_redis_server
from tests.harness import RedisServer

pytestmark = pytest.mark.timeout(300)

PACKAGE = "inflection==0.5.1"


def _plural(word: str) -> str:
    import inflection  # only in the environment

    return inflection.pluralize(word)


def start_worker(server: RedisServer, cwd: Path, env_dir: Path, *envs: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.pop("PYTHONPATH", None)
    env.update(
        PICLOUD_SERVER_URL=server.url,
        PICLOUD_SIGNING_KEY=SIGNING_KEY,
        PICLOUD_ENV_DIR=str(env_dir),
        PICLOUD_API_KEY="ops",
    )
    argv = [sys.executable, "-m", "picloud_compat.cli", "worker", "--type", "c1", "-c", "1"]
    for name in envs:
        argv += ["--env", name]
    log = open(cwd / "worker.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def env_dir():
    """Where builds go: reachable by the executors' uids (unlike pytest's tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="picloud-prebuilt-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(tmp_path: Path):
    ensure_redis_server()
    redis = RedisServer(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def test_a_worker_builds_its_environments_before_taking_jobs(server, tmp_path, env_dir):
    c = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "ops")
    spec = EnvRegistry(c.store, "ops").create("words", [PACKAGE])
    proc, log = start_worker(server, tmp_path, env_dir, "words", "ops:words")
    try:
        deadline = time.monotonic() + 240
        while not c.prebuilt(c.services()["c1"]):
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.5)
        # built before any job asked for it, and named by the registration
        assert (env_dir / spec.digest() / READY).exists()
        assert c.prebuilt(c.services()["c1"]) == ["words"]
        assert c.prebuilt(c.services()["c2"]) == []
        jid = c.call(_plural, "octopus", _env="words")
        assert c.result(jid, timeout=60) == "octopi"
        # another key sees no name of ours
        other = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "x")
        assert other.prebuilt(other.services()["c1"]) == []
        other.hub.close()
    finally:
        stop(proc)
        log.close()
        c.hub.close()


@pytest.mark.parametrize(
    ("requirements", "reference", "message"),
    [
        (None, "nowhere", "no environment named 'nowhere'"),
        (["no-such-package-picloud-test==1.0"], "broken", "no-such-package-picloud-test"),
        (None, "bad key:words", "api_key must be"),
        ("unreachable", "words", "cannot enter"),
    ],
)
def test_a_worker_that_cannot_serve_an_environment_does_not_start(
    server, tmp_path, env_dir, requirements, reference, message
):
    c = cluster_client(Settings(server_url=server.url, signing_key=SIGNING_KEY), "ops")
    if requirements == "unreachable":  # builds where the executors' uids cannot go
        if os.geteuid() != 0:
            pytest.skip("jobs run under other uids only when the worker is root")
        EnvRegistry(c.store, "ops").create(reference, [PACKAGE])
        env_dir = tmp_path / "envs"
    elif requirements:
        EnvRegistry(c.store, "ops").create(reference, requirements)
    proc, log = start_worker(server, tmp_path, env_dir, reference)
    try:
        assert proc.wait(timeout=240) != 0
        text = (tmp_path / "worker.log").read_text()
        assert "cannot serve environment" in text and message in text
        assert c.services()["c1"].processes == 0  # it never registered
    finally:
        stop(proc)
        log.close()
        c.hub.close()
