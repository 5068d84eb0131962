"""Building an environment on a worker, once, into a cached virtual environment.

uv creates the virtual environment on the worker's own interpreter and installs the
requirements (seconds for most packages). The platform is not installed again: a
``.pth`` file adds the worker's site-packages *after* the environment's own, so the
job process imports the same picloud_compat and cloudpickle as the worker, while the
environment's packages win for everything else.

A build runs no code of the tenant's: uv installs wheels only (``--only-binary :all:``: no
sdist is built, so no setup.py runs), reads no uv configuration (``--no-config``), and
gets a scrubbed environment (no cluster secret to read or to expand into a requirement).
The requirements are checked again here, whoever wrote the record, and ``env_dir`` must
belong to the worker's user and be writable by no one else, so no tenant can plant a
build in it. The new interpreter is first run by executors, confined (`runner.launch`).

Builds are keyed by `EnvSpec.digest` under ``env_dir``: a build happens once per worker
host (a file lock makes the worker's other processes wait for it rather than build it
twice) and is renamed into place only when complete. A failed build is remembered for
`RETRY_FAILED` seconds with its log, which is what the jobs' error shows, so a bad
requirement does not rebuild for every chunk. Ops can prebuild environments into an
image (``picloud env build``) by pointing ``env_dir`` at a directory baked into it.

The cache keeps at most ``env_cache_builds`` builds: after each new build, the least
recently used ones beyond that are removed, except builds in use (a pool process holds
a shared lock on a build while it keeps an executor of it: `EnvBuilder.hold`) and
builds a worker was started to serve (``picloud worker --env``: pinned). A tenant
creating environment after environment therefore cannot fill the worker's disk with
builds (uv's download cache, shared by every build, is kept).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil

from picloud_compat.environments.spec import EnvSpec, checked_requirements
from picloud_compat.errors import CloudException
from picloud_compat.settings import Settings

_NETWORK = frozenset(
    {"SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
    | {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
)
RETRY_FAILED = 60.0
BUILD_TIMEOUT = 900.0
LOG_TAIL = 4000
READY = ".picloud-ready"
"""In a complete build; its modification time is the build's last use."""
PINNED = ".picloud-pinned"
"""In a build a worker was started to serve: never evicted."""
LOCKS = ".locks"
"""Under the cache: the builds' lock files, in a directory only the worker can enter."""


class EnvBuildFailed(CloudException):
    """The environment could not be built: the message carries the build's log."""


def default_env_dir() -> Path:
    """Where builds are cached when ``env_dir`` is not set: never a shared temporary
    directory, where another user could create it first."""
    if os.geteuid() == 0:
        return Path("/var/lib/picloud/envs")
    return Path.home() / ".cache" / "picloud" / "envs"


def env_builder(settings: Settings) -> EnvBuilder:
    """The builder of this host's cache (``env_dir``, ``env_cache_builds``)."""
    return EnvBuilder(Path(settings.env_dir or default_env_dir()), settings.env_cache_builds)


def _checked_root(root: Path) -> None:
    """The cache is ours alone: a directory another user can write to could hold a
    planted "build" that executors would run."""
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise EnvBuildFailed(
            f"env_dir {root} must be a directory owned by uid {os.geteuid()} and writable by "
            "no one else"
        )
    if os.geteuid() == 0:  # executors run as other users: they must reach the builds
        for directory in (root.resolve(), *root.resolve().parents):
            if not directory.stat().st_mode & 0o001:
                raise EnvBuildFailed(
                    f"env_dir {root}: jobs run under other uids, which cannot enter "
                    f"{directory} (mode {directory.stat().st_mode & 0o777:o}); choose an "
                    "env_dir others can reach, or chmod o+x that directory"
                )


class BuildHold:
    """A build kept from eviction while its executors run (see `EnvBuilder.hold`)."""

    def __init__(self, interpreter: Path, lock: IO[str] | None) -> None:
        self.interpreter = interpreter
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops its shared lock


class EnvBuilder:
    """Builds and finds environments under one directory."""

    def __init__(self, root: Path, keep: int = 20) -> None:
        """`keep`: the most builds the cache keeps (``env_cache_builds``)."""
        self.root = root
        self.keep = keep

    def python(self, spec: EnvSpec) -> Path:
        """The interpreter of `spec`'s environment, built first if needed."""
        spec = EnvSpec(spec.name, checked_requirements(spec.requirements))  # whoever saved it
        _checked_root(self.root)
        target = self.root / spec.digest()
        interpreter = target / "bin" / "python"
        if self._used(target):
            return interpreter
        with self._locked(target):
            if self._used(target):  # another process built it meanwhile
                return interpreter
            self._raise_recent_failure(spec, target)
            self._build(spec, target)
        self._evict(keeping=target.name)
        return interpreter

    def hold(self, spec: EnvSpec) -> BuildHold:
        """`python(spec)`, with the build kept from eviction until the hold's release:
        a shared lock on the build's lock file, which eviction must take exclusively.
        (In a read-only cache, baked into an image, nothing is evicted: no lock.)"""
        while True:
            interpreter = self.python(spec)
            target = interpreter.parent.parent
            lock = self._lock_file(target)
            if lock is None:
                return BuildHold(interpreter, None)
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
            if (target / READY).exists():
                return BuildHold(interpreter, lock)
            lock.close()  # evicted between the two: build it again

    def pin(self, spec: EnvSpec) -> Path:
        """`python(spec)`, and never evict that build (a worker serves it by design)."""
        interpreter = self.python(spec)
        target = interpreter.parent.parent
        lock = self._lock_file(target)
        if lock is None:
            return interpreter  # a read-only cache: nothing is evicted from it
        with lock:  # eviction looks for the mark under this lock
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            if not (target / READY).exists():  # evicted meanwhile
                return self.pin(spec)
            (target / PINNED).touch()
        return interpreter

    def _lock_file(self, target: Path) -> IO[str] | None:
        """The build's lock file, opened; None if the cache is read-only. Lock files
        live in a directory only the worker's user can enter: a job (another uid) that
        could open one could lock it and stall every executor start of that build."""
        locks = self.root / LOCKS
        try:
            locks.mkdir(mode=0o700, exist_ok=True)
            if locks.stat().st_mode & 0o077 or locks.stat().st_uid != os.geteuid():
                raise EnvBuildFailed(f"{locks} must be private to uid {os.geteuid()}")
            fd = os.open(locks / target.name, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return None
            raise
        return os.fdopen(fd, "r+")

    @staticmethod
    def _used(target: Path) -> bool:
        """Whether the build is complete; if so its last use is now."""
        try:
            os.utime(target / READY)
        except FileNotFoundError:
            return False
        except OSError:  # a read-only image's prebuilt cache: used, but not noted
            return (target / READY).exists()
        return True

    def _evict(self, keeping: str) -> None:
        """Remove the least recently used builds beyond `keep`, never one in use, one
        pinned, or `keeping` (just built)."""
        builds = []
        for entry in self.root.iterdir():
            if _leftover(entry):  # of an eviction or a build whose process died
                shutil.rmtree(entry, ignore_errors=True)
            if "." in entry.name or entry.name == keeping:
                continue
            with contextlib.suppress(OSError):  # not a build (a file, lost+found)
                if not (entry / PINNED).exists():
                    builds.append(((entry / READY).stat().st_mtime, entry))
        excess = len(builds) + 1 - self.keep
        for _, entry in sorted(builds):
            if excess <= 0:
                break
            lock = self._lock_file(entry)
            if lock is None:
                return
            with lock:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # held: an executor of it runs, or it is being built
                if (entry / PINNED).exists() or not (entry / READY).exists():
                    continue  # pinned, or evicted by another process, meanwhile
                trash = entry.with_name(f"{entry.name}.evicted-{os.getpid()}")
                entry.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
            excess -= 1

    def _build(self, spec: EnvSpec, target: Path) -> None:
        work = target.with_name(f"{target.name}.building-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        log: list[str] = []
        try:
            venv = [_uv(), "venv", "--no-config", "--quiet", "--python", sys.executable]
            self._run(log, [*venv, str(work)])
            python = work / "bin" / "python"
            requirements = work / "requirements.txt"
            requirements.write_text("\n".join(spec.requirements) + "\n")
            self._run(
                log,
                [
                    *(_uv(), "pip", "install", "--no-config", "--only-binary", ":all:"),
                    *("--python", str(python), "-r", str(requirements)),
                ],
            )
            _link_platform(work)
            (work / READY).write_text(spec.digest())
            _open_to_all(work)
            work.rename(target)
        except EnvBuildFailed as exc:
            shutil.rmtree(work, ignore_errors=True)
            failed = target.with_name(f"{target.name}.failed")
            failed.write_text(str(exc.parameter))
            raise
        target.with_name(f"{target.name}.failed").unlink(missing_ok=True)

    def _run(self, log: list[str], argv: list[str]) -> None:
        # nothing of the worker's but how to reach the index (its CA, proxies, mirrors):
        # no secret to leak into a log or a requirement
        env = {k: v for k, v in os.environ.items() if k in _NETWORK or k.startswith("UV_")}
        env |= {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "UV_NO_PROGRESS": "1",
            "UV_CACHE_DIR": str(self.root / ".uv-cache"),
        }
        try:
            done = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise EnvBuildFailed(f"the build took over {BUILD_TIMEOUT:.0f} s") from None
        log.append(f"$ {' '.join(argv[1:3])} ...\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            text = "".join(log)[-LOG_TAIL:]
            raise EnvBuildFailed(f"building the environment failed:\n{text}")

    def _raise_recent_failure(self, spec: EnvSpec, target: Path) -> None:
        failed = target.with_name(f"{target.name}.failed")
        with contextlib.suppress(FileNotFoundError):
            if time.time() - failed.stat().st_mtime < RETRY_FAILED:
                raise EnvBuildFailed(failed.read_text())

    @contextlib.contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        lock = self._lock_file(target)
        if lock is None:
            raise EnvBuildFailed(f"env_dir {self.root} is read-only and has no build of it")
        with lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _leftover(entry: Path) -> bool:
    """A directory an eviction, or a build whose process died, left behind."""
    name = entry.name
    if ".evicted-" in name:
        return True
    if ".building-" not in name:
        return False
    pid = name.rsplit("-", 1)[1]
    return pid.isdigit() and not psutil.pid_exists(int(pid))


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _link_platform(venv: Path) -> None:
    """Let the environment import the platform from the worker's site-packages (after
    its own packages, so they win). Computed here: the new interpreter is not run."""
    purelib = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
    ours = sysconfig.get_paths()["purelib"]
    line = f"import site; site.addsitedir({ours!r})\n"
    (Path(purelib) / "zz_picloud_platform.pth").write_text(line)


def _open_to_all(root: Path) -> None:
    """Readable by the executors' uids (a build runs as the worker's user)."""
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)
