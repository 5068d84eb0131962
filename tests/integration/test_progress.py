"""Progress bars while waiting on many jobs: in a real Jupyter kernel, on a real
terminal (a pseudo-terminal of 120 columns), and never in a plain script.

The jobs run on the simulator, which is what a notebook uses by default.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.timeout(180)

SCRIPT = """
import time
import cloud

def slow(x):
    time.sleep(0.05)
    if x == 3:
        raise ValueError("three")
    return x

values = cloud.result(cloud.map(slow, range(30)), ignore_errors=True)
print("RESULT", len(values))
"""


def run_script(tmp_path: Path, terminal: bool, **env: str) -> tuple[str, str]:
    """(stdout, stderr) of SCRIPT, with stderr on a 120-column terminal or a pipe."""
    script = tmp_path / "waits.py"
    script.write_text(SCRIPT)
    environ = dict(os.environ, PICLOUD_CONFIG_DIR=str(tmp_path / "cfg"), **env)
    if not terminal:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, env=environ, timeout=120
        )
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=slave, env=environ
    )
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.wait(timeout=30)
    return out, seen.decode(errors="replace")


def test_a_terminal_shows_done_failed_and_running(tmp_path: Path) -> None:
    out, err = run_script(tmp_path, terminal=True)
    assert "RESULT 30" in out
    assert "30/30" in err and "done=29" in err and "failed=1" in err and "running=" in err


def test_a_plain_script_shows_nothing_and_the_setting_turns_it_off(tmp_path: Path) -> None:
    out, err = run_script(tmp_path, terminal=False)
    assert "RESULT 30" in out and "job/s" not in err
    out, err = run_script(tmp_path, terminal=True, PICLOUD_PROGRESS="off")
    assert "RESULT 30" in out and "job/s" not in err


def _run_notebook(tmp_path: Path, *cells: str) -> list[dict]:  # type: ignore[type-arg]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    os.environ.setdefault("PICLOUD_CONFIG_DIR", str(tmp_path / "cfg"))
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    return [output for cell in notebook.cells for output in cell.outputs]


WAIT_CELL = """
import time, cloud
def slow(x):
    time.sleep(0.05)
    return x
print("sum", sum(cloud.result(cloud.map(slow, range(20)))))
"""


def test_a_notebook_shows_a_widget_unless_turned_off(tmp_path: Path) -> None:
    outputs = _run_notebook(tmp_path, WAIT_CELL)
    kinds = [key for o in outputs for key in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" in kinds
    assert any("sum 190" in o.get("text", "") for o in outputs)
    # turned off after the client was made (the first wait made it)
    quiet = _run_notebook(
        tmp_path, WAIT_CELL, "cloud.config.progress = 'off'\nprint('off')", WAIT_CELL
    )
    quiet = quiet[quiet.index(next(o for o in quiet if "off" in o.get("text", ""))) :]
    kinds = [key for o in quiet for key in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in kinds
    assert any("sum 190" in o.get("text", "") for o in quiet)
