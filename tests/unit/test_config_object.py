"""cloud.config: precedence, save() writes a 0600 cloudconf.py that load() reads back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from picloud_compat import settings
from picloud_compat.config_object import ConfigSettings


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLOUD_CONFIG_DIR", str(tmp_path))
    for name in settings.setting_names():
        monkeypatch.delenv(f"PICLOUD_{name.upper()}", raising=False)
    monkeypatch.setattr(settings, "RUNTIME_OVERRIDES", {})
    return ConfigSettings()


def test_precedence_and_save(config, tmp_path, monkeypatch):
    monkeypatch.setenv("PICLOUD_NUM_PROCS", "3")
    assert config.num_procs == 3
    config.num_procs = 5  # cloud.config beats the environment
    assert config.num_procs == 5
    config.api_key = "1234"
    config.api_secretkey = "s3cret"
    path = config.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = Path(path).read_text()
    assert "api_key = '1234'" in text and "num_procs = 5" in text
    config.reset()
    monkeypatch.delenv("PICLOUD_NUM_PROCS")
    loaded = settings.Settings.load()
    assert (loaded.api_key, loaded.num_procs) == ("1234", 5)
    assert "s3cret" not in repr(config)


def test_commit_reconnects(config):
    from picloud_compat.client import session as client

    class Closing:
        closed = False

        def close(self):
            self.closed = True

    fake = Closing()
    previous = client.set_client(fake)  # type: ignore[arg-type]
    try:
        config.commit()
        assert fake.closed and client.peek_client() is None
    finally:
        client.set_client(previous)


@pytest.mark.parametrize("value", [-1, "-2"])
def test_a_negative_process_count_is_refused_when_assigned(config, value):
    # it used to be accepted, and the simulator then started no process: every job
    # stayed queued forever
    with pytest.raises(
        settings.ConfigurationError, match=r"num_procs \(cloud.config\) must be >= 0"
    ):
        config.num_procs = value
    assert config.num_procs == 0  # nothing was kept


def test_zero_processes_still_means_one_per_cpu(config):
    config.num_procs = 0
    assert settings.Settings.load().processes == (os.cpu_count() or 2)
