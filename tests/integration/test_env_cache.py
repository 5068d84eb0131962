"""The environment cache stays bounded (`environments.builder`): real uv builds of a
small package from PyPI, the least recently used evicted beyond the limit, never one an
executor holds or one a worker was started to serve."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from picloud_compat.environments.builder import EnvBuilder
from picloud_compat.environments.spec import EnvSpec

pytestmark = pytest.mark.timeout(600)

A, B, C = (
    EnvSpec(n, (f"inflection=={v}",)) for n, v in (("a", "0.5.1"), ("b", "0.5.0"), ("c", "0.4.0"))
)


@pytest.fixture
def root() -> Iterator[Path]:
    """A cache of the test's own, where executors' uids could reach it (as root, the
    builder checks that; pytest's tmp_path is private)."""
    parent = Path(tempfile.mkdtemp(prefix="picloud-env-cache-"))
    parent.chmod(0o755)
    yield parent / "envs"
    shutil.rmtree(parent, ignore_errors=True)


def cached(root: Path) -> set[str]:
    """The names of the environments whose builds are in the cache."""
    names = {spec.digest(): spec.name for spec in (A, B, C)}
    return {names[p.name] for p in root.iterdir() if p.name in names}


def version(python: Path) -> str:
    code = "import inflection; print(inflection.__version__)"
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_least_recently_used_build_goes_but_not_one_held(root: Path) -> None:
    builder = EnvBuilder(root, keep=2)
    held = builder.hold(A)  # an executor of A runs
    builder.python(B)
    assert cached(root) == {"a", "b"}
    builder.python(C)  # one too many: A is older, but held, so B goes
    assert cached(root) == {"a", "c"}
    assert version(held.interpreter) == "0.5.1"  # A still works under its executor
    held.release()
    builder.python(C)  # used: now the most recent
    builder.python(B)  # built again; A, unheld and least recently used, goes
    assert cached(root) == {"b", "c"}
    assert version(builder.python(A)) == "0.5.1"  # and is built again on demand
    assert cached(root) == {"a", "b"} or cached(root) == {"a", "c"}
    assert not any(".evicted-" in p.name for p in root.iterdir())
    # the lock files are the worker's alone: a job (another uid) that could open one
    # could lock it and stall every executor start of that build
    locks = root / ".locks"
    assert locks.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in locks.iterdir())


def test_a_build_a_worker_serves_is_never_evicted(root: Path) -> None:
    builder = EnvBuilder(root, keep=1)
    builder.pin(A)  # picloud worker --env / picloud env build
    # what a crash can leave: a build whose process died, an eviction cut short
    (root / f"{B.digest()}.building-999999999").mkdir()
    (root / f"{C.digest()}.evicted-999999999").mkdir()
    builder.python(B)
    builder.python(C)
    assert cached(root) == {"a", "c"}
    assert not [p.name for p in root.iterdir() if ".building-" in p.name or ".evicted-" in p.name]
