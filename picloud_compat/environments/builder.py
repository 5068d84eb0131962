"""Building an environment on a worker, once, into a cached virtual environment.

uv creates the virtual environment on the worker's own interpreter and installs the
requirements (seconds for most packages). The platform is not installed again: a
``.pth`` file adds the worker's site-packages *after* the environment's own, so the
job process imports the same picloud_compat and cloudpickle as the worker, while the
environment's packages win for everything else.

Builds are keyed by `EnvSpec.digest` under ``env_dir``: a build happens once per worker
host (a file lock makes the worker's other processes wait for it rather than build it
twice) and is renamed into place only when complete. A failed build is remembered for
`RETRY_FAILED` seconds with its log, which is what the jobs' error shows, so a bad
requirement does not rebuild for every chunk. Ops can prebuild environments into an
image (``picloud env build``) by pointing ``env_dir`` at a directory baked into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from picloud_compat.environments.spec import EnvSpec
from picloud_compat.errors import CloudException

RETRY_FAILED = 60.0
BUILD_TIMEOUT = 900.0
LOG_TAIL = 4000
READY = ".picloud-ready"


class EnvBuildFailed(CloudException):
    """The environment could not be built: the message carries the build's log."""


def default_env_dir() -> Path:
    """Where builds are cached when ``env_dir`` is not set."""
    return Path(tempfile.gettempdir()) / "picloud-envs"


class EnvBuilder:
    """Builds and finds environments under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def python(self, spec: EnvSpec) -> Path:
        """The interpreter of `spec`'s environment, built first if needed."""
        target = self.root / spec.digest()
        interpreter = target / "bin" / "python"
        if (target / READY).exists():
            return interpreter
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # executors under other uids run from here
        with self._locked(target):
            if (target / READY).exists():  # another process built it meanwhile
                return interpreter
            self._raise_recent_failure(spec, target)
            self._build(spec, target)
        return interpreter

    def _build(self, spec: EnvSpec, target: Path) -> None:
        work = target.with_name(f"{target.name}.building-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        log: list[str] = []
        try:
            self._run(log, [_uv(), "venv", "--quiet", "--python", sys.executable, str(work)])
            python = work / "bin" / "python"
            requirements = work / "requirements.txt"
            requirements.write_text("\n".join(spec.requirements) + "\n")
            self._run(
                log,
                [_uv(), "pip", "install", "--python", str(python), "-r", str(requirements)],
            )
            _link_platform(python)
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
        env = dict(os.environ, UV_NO_PROGRESS="1", UV_CACHE_DIR=str(self.root / ".uv-cache"))
        env.pop("VIRTUAL_ENV", None)
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
        with open(target.with_name(f"{target.name}.lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _uv() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def _link_platform(python: Path) -> None:
    """Let the environment import the platform from the worker's site-packages (after
    its own packages, so they win)."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
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
