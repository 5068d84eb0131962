"""`import cloud` works from anywhere, and a user's own tasks.py / config.py cannot break it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_in(directory: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, timeout=120
    )


def test_user_modules_named_like_ours_do_not_shadow_the_platform(tmp_path: Path):
    for name in ("tasks", "workers", "config", "celeryconfig"):
        (tmp_path / f"{name}.py").write_text("raise RuntimeError('user module imported')\n")
    (tmp_path / "config").mkdir()  # a package called config, too
    (tmp_path / "config" / "__init__.py").write_text("raise RuntimeError('user package')\n")
    code = (
        "import cloud, cloud.mp\n"
        "from picloud_compat.tasks.app import app\n"
        "import picloud_compat.workers.cli, picloud_compat.config.celeryconfig\n"
        "print(cloud.is_simulated(), app.main)\n"
    )
    proc = run_in(tmp_path, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "picloud"]


def test_simulator_runs_a_main_script_without_a_main_guard(tmp_path: Path):
    """Simulator workers are fresh interpreters: they never re-import the user's script."""
    script = tmp_path / "script.py"
    script.write_text(
        "import cloud\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "print(cloud.result(cloud.map(double, range(5))))\n"
        "cloud.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 2, 4, 6, 8]"


def test_picloud_command_is_installed():
    proc = subprocess.run(
        [sys.executable, "-m", "picloud_compat.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "worker" in proc.stdout
