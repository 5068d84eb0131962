"""Processes the tests start and stop by pid: a private redis-server and Celery workers."""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

from picloud_compat.workers.cli import worker_argv

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class RedisServer:
    def __init__(
        self, directory: Path, port: int | None = None, password: str | None = None
    ) -> None:
        """With `password`, the default user needs it (what an isolated cluster runs:
        tenants get no Redis credentials at all)."""
        self.dir = directory
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool = False) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if appendonly else "no",
                "--dir",
                str(self.dir),
                "--maxmemory-policy",
                "noeviction",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, password=self.password)
        wait_for(lambda: _pings(client), 10, f"redis-server on port {self.port}")
        client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class Worker:
    """``celery -A picloud_compat.tasks.app worker`` as a subprocess in an empty cwd."""

    def __init__(
        self,
        redis_url: str,
        signing_key: str,
        cwd: Path,
        concurrency: int = 2,
        queues: str = "c1,c2,f2,m1,s1",
        name: str | None = None,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """`prefix` runs the worker through a command that execs it in place (``ip netns
        exec NS ...``, for a worker on another host): the pid stays the worker's."""
        self.extra_env = env or {}
        self.prefix = list(prefix)
        self.redis_url = redis_url
        self.signing_key = signing_key
        self.cwd = cwd
        self.concurrency = concurrency
        self.queues = queues
        self.name = name or f"w{os.getpid()}-{time.monotonic_ns() % 10**8}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"{self.name}.log"

    def start(self, wait: bool = True) -> None:
        env = dict(os.environ)
        env.update(PICLOUD_SERVER_URL=self.redis_url, PICLOUD_SIGNING_KEY=self.signing_key)
        env.pop("PYTHONPATH", None)  # the worker must not see the tests' modules
        env.update(self.extra_env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    *worker_argv(
                        self.queues.split(","), self.concurrency, "INFO", f"{self.name}@%h"
                    ),
                ],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # never leave a half-started worker behind
                raise

    def wait_ready(self, timeout: float = 30) -> None:
        client = redis.from_url(self.redis_url)
        main_pid = self.proc.pid if self.proc else 0

        def registered() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; log:\n{self.log.read_text()[-3000:]}")
            return any(k.decode().endswith(f":{main_pid}") for k in client.hkeys("pc:workers"))

        wait_for(registered, timeout, "the worker to register")
        client.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def children(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.Error:
            return []

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (a hard crash)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers in the worker's group
        except ProcessLookupError:
            pass
        self.proc = None


@contextmanager
def messages_held_back(worker: Worker) -> Iterator[None]:
    """The worker's main process stopped (SIGSTOP): no Celery message reaches a pool
    process, while the pool processes themselves run on."""
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)


def enable_task_events(redis_url: str, signing_key: str, worker: Worker) -> None:
    """Switch the worker's task events on, as Flower does, and wait until it noted them."""
    from picloud_compat.runner.state_file import TASK_EVENTS_MARKER

    assert worker.proc is not None
    env = dict(os.environ, PICLOUD_SERVER_URL=redis_url, PICLOUD_SIGNING_KEY=signing_key)
    argv = [sys.executable, "-m", "celery", "-A", "picloud_compat.tasks.app", "control"]
    subprocess.run([*argv, "enable_events"], env=env, check=True, capture_output=True, timeout=60)
    marker = f"/tmp/picloud-worker-{worker.proc.pid}-*/{TASK_EVENTS_MARKER}"
    wait_for(lambda: glob.glob(marker), 20, "the worker to note its task events")


class MotoServer:
    """A real S3 API (moto) on loopback, for `cloud.files`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import shutil

        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        with open(self.dir / "moto.log", "ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        import urllib.request

        def up() -> bool:
            try:
                urllib.request.urlopen(self.url, timeout=1)
                return True
            except Exception as exc:
                return "HTTP Error" in str(exc)

        wait_for(up, 30, "moto_server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Beat:
    """``picloud beat`` (Celery beat + RedBeat) as a subprocess."""

    def __init__(self, redis_url: str, signing_key: str, cwd: Path, name: str = "beat") -> None:
        self.redis_url, self.signing_key, self.cwd = redis_url, signing_key, cwd
        self.log = cwd / f"{name}-{time.monotonic_ns() % 10**8}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(
            os.environ, PICLOUD_SERVER_URL=self.redis_url, PICLOUD_SIGNING_KEY=self.signing_key
        )
        env.pop("PYTHONPATH", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "picloud_compat.cli", "beat", "-l", "INFO"],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class Gateway:
    """``picloud gateway`` (FastAPI on uvicorn) as a subprocess on a free port."""

    def __init__(
        self, redis_url: str, signing_key: str, cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.env = dict(
            os.environ,
            PICLOUD_SERVER_URL=redis_url,
            PICLOUD_SIGNING_KEY=signing_key,
            PICLOUD_GATEWAY_URL=f"http://127.0.0.1:{self.port}",
        )
        self.env.update(env or {})
        self.env.pop("PYTHONPATH", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import httpx

        with open(self.cwd / f"gateway-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "picloud_compat.cli", "gateway", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError("the gateway exited early")
            try:
                return httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(up, 30, "the gateway")
        except BaseException:
            self.stop()  # never leave a half-started gateway behind
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def check_beat_and_gateway(url: str, signing_key: str, cwd: Path, name: str) -> None:
    """Start beat and a gateway on `url` (a worker must serve c1 there) and check both
    work through it: an isolated client's job via the gateway, a cron firing via beat."""
    from picloud_compat.accounts import AccountRegistry
    from picloud_compat.client import session
    from picloud_compat.client.remote import remote_client
    from picloud_compat.cron.registry import CronRegistry
    from picloud_compat.settings import Settings
    from picloud_compat.store.redis import RedisStore
    from tests import jobfuncs as jf

    settings = Settings(server_url=url, signing_key=signing_key)
    admin = RedisStore.from_url(url, settings)
    api_key, secret = AccountRegistry(admin, settings).create_key(name)
    admin.close()
    beat = Beat(url, signing_key, cwd, f"{name}-beat")
    gateway = Gateway(url, signing_key, cwd)
    client = session.cluster_client(settings, f"t-{name}")
    try:
        beat.start()
        gateway.start()
        isolated = remote_client(
            Settings(server_url=gateway.url, api_key=api_key, api_secretkey=secret)
        )
        assert isolated.result(isolated.call(jf.add, 20, 22), timeout=60) == 42
        isolated.close()
        registry = CronRegistry(client)
        registry.register(jf.noop, name, "* * * * * */2")
        wait_for(lambda: client.list_jobs(label=f"cron:{name}"), 30, "a firing through beat")
        registry.deregister(name)
    finally:
        client.close()
        gateway.stop()
        beat.stop()
