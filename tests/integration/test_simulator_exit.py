"""A script that ends while its simulator still runs jobs ends quietly (no tracebacks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent(
    """
    import time
    import cloud

    def slow(x):
        print("working", x)
        time.sleep(1)
        return x

    jids = cloud.map(slow, range(6))
    time.sleep(0.3)
    print("bye")
    """
)


@pytest.mark.parametrize("attempt", range(3))
def test_ending_a_script_with_jobs_running_prints_nothing_but_its_own_output(tmp_path, attempt):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env["PICLOUD_CONFIG_DIR"] = str(tmp_path / "conf")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == "bye"
    assert done.stderr == ""
