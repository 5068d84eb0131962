from __future__ import annotations

import os
from pathlib import Path

import pytest

from picloud_compat.errors import ConfigurationError
from picloud_compat.settings import (
    MAX_ATTEMPTS,
    MAX_TRANSMIT_CEILING,
    MAX_TRANSMIT_DATA,
    Settings,
    getconfigpath,
    read_cloudconf,
)


@pytest.fixture(autouse=True)
def _hermetic(clean_env: pytest.MonkeyPatch) -> None:
    """Every test here starts without any PICLOUD_* variable."""


def write_conf(directory: Path, text: str) -> Path:
    path = directory / "cloudconf.py"
    path.write_text(text)
    return path


def test_defaults_without_config_file(tmp_path: Path) -> None:
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings == Settings()
    assert settings.max_attempts == MAX_ATTEMPTS
    assert settings.max_transmit_data == MAX_TRANSMIT_DATA
    assert settings.api_key is None


def test_cloudconf_literals_are_read(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        "api_key = 'abc'\n"
        "max_attempts = 7\n"
        "use_simulator = True\n"
        "lease_seconds = 2\n"
        's3_bucket = "bucket"\n',
    )
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings.api_key == "abc"
    assert settings.max_attempts == 7
    assert settings.use_simulator is True
    assert settings.lease_seconds == 2.0
    assert isinstance(settings.lease_seconds, float)
    assert settings.s3_bucket == "bucket"


def test_cloudconf_is_never_executed(tmp_path: Path) -> None:
    markers = [str(tmp_path / f"marker{i}") for i in range(4)]
    write_conf(
        tmp_path,
        f"import os; os.system('touch {markers[0]}')\n"
        f"open({markers[1]!r}, 'w').close()\n"
        f"unknown_setting = open({markers[2]!r}, 'w')\n"
        f"def f():\n    return open({markers[3]!r}, 'w')\n"
        "x = f()\n"
        "max_attempts = 4\n",
    )
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings.max_attempts == 4
    assert not any(os.path.exists(m) for m in markers)
    assert sorted(os.listdir(tmp_path)) == ["cloudconf.py"]


def test_non_literal_known_setting_is_a_configuration_error(tmp_path: Path) -> None:
    write_conf(tmp_path, "import os\nmax_attempts = int(os.environ['HOME'] and '3')\n")
    with pytest.raises(ConfigurationError, match="max_attempts must be a literal"):
        Settings.load(config_dir=str(tmp_path))


def test_non_literal_unknown_setting_is_ignored(tmp_path: Path) -> None:
    write_conf(tmp_path, "import os\nmy_own_thing = os.getcwd()\napi_key = 'k'\n")
    assert Settings.load(config_dir=str(tmp_path)).api_key == "k"


def test_syntax_error_is_a_configuration_error(tmp_path: Path) -> None:
    write_conf(tmp_path, "api_key = 'unterminated\n")
    with pytest.raises(ConfigurationError, match="not valid Python"):
        Settings.load(config_dir=str(tmp_path))


def test_wrongly_typed_literal_is_a_configuration_error(tmp_path: Path) -> None:
    write_conf(tmp_path, "max_attempts = 'three'\n")
    with pytest.raises(ConfigurationError, match="max_attempts"):
        Settings.load(config_dir=str(tmp_path))


def test_unhashable_literal_is_a_configuration_error(tmp_path: Path) -> None:
    write_conf(tmp_path, "api_key = {[]: 1}\n")
    with pytest.raises(ConfigurationError, match="api_key"):
        Settings.load(config_dir=str(tmp_path))


def test_string_none_means_unset(tmp_path: Path) -> None:
    write_conf(tmp_path, "api_key = 'None'\napi_secretkey = 'None'\nserver_url = None\n")
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings.api_key is None
    assert settings.api_secretkey is None
    assert settings.server_url is None
    assert read_cloudconf(tmp_path / "cloudconf.py")["api_key"] is None


def test_read_cloudconf_missing_file(tmp_path: Path) -> None:
    assert read_cloudconf(tmp_path / "cloudconf.py") == {}


def test_environment_overrides_cloudconf(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    write_conf(tmp_path, "max_attempts = 7\napi_key = 'file'\n")
    clean_env.setenv("PICLOUD_MAX_ATTEMPTS", "5")
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings.max_attempts == 5
    assert settings.api_key == "file"


def test_empty_environment_variable_is_ignored(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    write_conf(tmp_path, "max_attempts = 7\n")
    clean_env.setenv("PICLOUD_MAX_ATTEMPTS", "")
    assert Settings.load(config_dir=str(tmp_path)).max_attempts == 7


def test_explicit_overrides_win(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    write_conf(tmp_path, "max_attempts = 7\napi_key = 'file'\n")
    clean_env.setenv("PICLOUD_MAX_ATTEMPTS", "5")
    clean_env.setenv("PICLOUD_API_KEY", "env")
    settings = Settings.load(config_dir=str(tmp_path), max_attempts=9, api_key=None)
    assert settings.max_attempts == 9
    assert settings.api_key == "env"  # a None override does not unset


def test_environment_values_are_coerced(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PICLOUD_LEASE_SECONDS", "2.5")
    clean_env.setenv("PICLOUD_MAX_TRANSMIT_DATA", "4096")
    clean_env.setenv("PICLOUD_SERVER_URL", "redis://h:1/0")
    settings = Settings.load(config_dir=str(tmp_path))
    assert settings.lease_seconds == 2.5
    assert settings.max_transmit_data == 4096
    assert settings.server_url == "redis://h:1/0"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        ("TRUE", True),
        ("False", False),
        (" on ", True),
        ("off", False),
    ],
)
def test_bool_parsing(
    raw: str, expected: bool, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("PICLOUD_USE_SIMULATOR", raw)
    assert Settings.load(config_dir=str(tmp_path)).use_simulator is expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("USE_SIMULATOR", "maybe"),
        ("SAVE_LOG", "2"),
        ("MAX_ATTEMPTS", "many"),
        ("MAX_ATTEMPTS", "2.5"),
        ("LEASE_SECONDS", "soon"),
    ],
)
def test_bad_environment_value_names_the_variable(
    name: str, raw: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv(f"PICLOUD_{name}", raw)
    with pytest.raises(ConfigurationError) as info:
        Settings.load(config_dir=str(tmp_path))
    assert f"PICLOUD_{name}" in str(info.value)
    assert repr(raw) in str(info.value)


def test_simulated_property() -> None:
    assert Settings().simulated
    assert not Settings(server_url="redis://h:6379/0").simulated
    assert Settings(server_url="redis://h:6379/0", use_simulator=True).simulated
    assert Settings(server_url="").simulated


def test_processes_property() -> None:
    assert Settings(num_procs=3).processes == 3
    assert Settings().processes == (os.cpu_count() or 2)


def test_replace_returns_new_validated_settings() -> None:
    base = Settings()
    changed = base.replace(api_key="k")
    assert changed.api_key == "k"
    assert base.api_key is None
    with pytest.raises(ConfigurationError):
        base.replace(max_attempts=0)


def test_getconfigpath_honours_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("PICLOUD_CONFIG_DIR", str(tmp_path))
    assert getconfigpath() == str(tmp_path)
    clean_env.setenv("PICLOUD_CONFIG_DIR", "~/elsewhere")
    assert getconfigpath() == os.path.expanduser("~/elsewhere")


def test_getconfigpath_default(clean_env: pytest.MonkeyPatch) -> None:
    assert getconfigpath() == os.path.expanduser("~/.picloud")
    clean_env.setenv("PICLOUD_CONFIG_DIR", "")
    assert getconfigpath() == os.path.expanduser("~/.picloud")


def test_load_reads_cloudconf_from_config_dir_env(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_conf(tmp_path, "api_key = 'from-env-dir'\n")
    clean_env.setenv("PICLOUD_CONFIG_DIR", str(tmp_path))
    assert Settings.load().api_key == "from-env-dir"


@pytest.mark.parametrize("value", [1, 1024, MAX_TRANSMIT_CEILING])
def test_max_transmit_data_in_bounds(value: int) -> None:
    assert Settings(max_transmit_data=value).max_transmit_data == value


@pytest.mark.parametrize("value", [0, -1, MAX_TRANSMIT_CEILING + 1])
def test_max_transmit_data_out_of_bounds(value: int) -> None:
    with pytest.raises(ConfigurationError, match="max_transmit_data"):
        Settings(max_transmit_data=value)


def test_max_transmit_data_bounds_apply_to_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("PICLOUD_MAX_TRANSMIT_DATA", str(MAX_TRANSMIT_CEILING + 1))
    with pytest.raises(ConfigurationError, match="max_transmit_data"):
        Settings.load(config_dir=str(tmp_path))


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        Settings(max_attempts=0)


def test_a_bad_value_names_where_it_came_from(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    write_conf(tmp_path, "num_procs = 'lots'\n")
    with pytest.raises(ConfigurationError, match=r"num_procs \(.*cloudconf.py\) must be int"):
        Settings.load(config_dir=str(tmp_path))  # not blamed on PICLOUD_NUM_PROCS, unset
    write_conf(tmp_path, "num_procs = 2\n")
    clean_env.setenv("PICLOUD_NUM_PROCS", "-4")
    with pytest.raises(
        ConfigurationError, match=r"num_procs \(env PICLOUD_NUM_PROCS\) must be >= 0"
    ):
        Settings.load(config_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("num_procs", -1),
        ("retention_seconds", 0),
        ("redis_socket_timeout", 0.0),
        ("lease_seconds", -1.0),
        ("inline_result_limit", -1),
        ("simulator_rest_port", -8080),
    ],
)
def test_out_of_range_numbers_are_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings(**{name: value})
