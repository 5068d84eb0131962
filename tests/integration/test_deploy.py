"""`deploy/` is checked, not just shipped: the compose file against the Compose
specification, systemd units with ``systemd-analyze verify``, EC2 user data and scripts.

``tests/data/compose-spec.json`` is the Compose specification's JSON schema, as
docker-compose 1.29.2 ships it (compose/config/compose_spec.json, Apache-2.0).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted([*DEPLOY.glob("systemd/*.service"), *DEPLOY.glob("ec2/*.service")])


def compose_validator() -> jsonschema.Draft201909Validator:
    schema = json.loads((ROOT / "tests/data/compose-spec.json").read_text())
    return jsonschema.Draft201909Validator(schema)


def test_the_compose_file_follows_the_compose_specification() -> None:
    document = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    errors = [e.message for e in compose_validator().iter_errors(document)]
    assert errors == []
    broken = copy.deepcopy(document)
    broken["services"]["worker-c1"]["restart"] = 5  # the check can fail
    assert list(compose_validator().iter_errors(broken))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_units_verify_cleanly(unit: Path, tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is required (Debian: apt-get install systemd)")
    # Verify the unit as installed: the paths it names are made to exist here.
    text = unit.read_text()
    text = text.replace("/opt/picloud/venv/bin/picloud", shutil.which("true") or "/bin/true")
    text = text.replace("/opt/picloud/deploy/ec2/", str(DEPLOY / "ec2") + "/")
    text = text.replace("EnvironmentFile=/", "EnvironmentFile=-/")
    name = unit.name.replace("@.service", "@c2.service")
    (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    complaints = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and not complaints, result.stderr


def test_a_unit_with_a_mistake_does_not_verify(tmp_path: Path) -> None:
    (tmp_path / "broken.service").write_text("[Service]\nExecStart=/bin/true\nRestartt=always\n")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "broken.service")],
        capture_output=True,
        text=True,
    )
    assert "Restartt" in result.stderr  # what the test above would catch


@pytest.mark.parametrize("kind", ["c1", "c2", "m1"])
def test_ec2_user_data_starts_a_draining_worker_of_its_type(kind: str) -> None:
    text = (DEPLOY / "ec2" / f"user-data-{kind}.yaml").read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    env = next(f for f in data["write_files"] if f["path"] == "/etc/picloud/picloud.env")
    assert env["permissions"] == "0600" and "PICLOUD_ISOLATION=tenant" in env["content"]
    commands = "\n".join(data["runcmd"])
    assert f"--type {kind}" in commands
    assert f"systemctl enable --now picloud-worker@{kind} picloud-drain-watch" in commands


def test_the_drain_script_parses() -> None:
    script = DEPLOY / "ec2" / "drain-on-termination.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert script.stat().st_mode & 0o111
