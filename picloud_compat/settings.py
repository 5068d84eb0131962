"""Client and worker settings: one frozen dataclass, read once.

Precedence: explicit arguments (e.g. ``cloud.setkey``), then ``PICLOUD_<NAME>``
environment variables, then ``cloudconf.py`` in the config directory, then the
defaults below. ``cloudconf.py`` is parsed as ``name = literal`` lines with
`ast.literal_eval`, never executed.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from picloud_compat.errors import ConfigurationError

CONFIG_DIR_ENV = "PICLOUD_CONFIG_DIR"
CONFIG_FILENAME = "cloudconf.py"
ENV_PREFIX = "PICLOUD_"

MAX_TRANSMIT_DATA = 16 * 1024 * 1024
"""Largest serialized function, argument tuple or result, in bytes."""
MAX_TRANSMIT_CEILING = 8 * 1024**3
"""Hard ceiling for `max_transmit_data`: what one process can reasonably pickle, seal
and hold; beyond `STORE_BLOB_CEILING` only arguments and results offloaded to S3."""
STORE_BLOB_CEILING = 256 * 1024 * 1024
"""The biggest blob kept in the job store itself (Redis strings stop at 512 MB): every
function, and arguments and results where nothing offloads them to S3."""
RETENTION_SECONDS = 7 * 24 * 3600
"""How long a finished job's record, result and output are kept (about 0.5 KB a job)."""
MAX_ATTEMPTS = 3
"""Runs of a restartable job before a lost worker turns it into an error."""
INLINE_RESULT_LIMIT = 64 * 1024
"""Results up to this size ride inside the completion notice (saves a round trip)."""
OUTPUT_LIMIT = 256 * 1024
"""stdout/stderr kept per job (the tail, as PiCloud kept the last 64 KB)."""
LEASE_SECONDS = 10.0
"""A running chunk's lease; its worker's warden renews it every 2 s (and, in the shared
mode, the job process running it every second). When a whole worker dies, its jobs are
recovered within about this long (plus one reaper pass)."""
ORPHAN_SECONDS = 20.0
"""A published chunk that is neither queued nor leased for this long is republished."""


def getconfigpath() -> str:
    """The directory holding cloudconf.py (``~/.picloud`` unless PICLOUD_CONFIG_DIR)."""
    return os.path.expanduser(os.environ.get(CONFIG_DIR_ENV) or "~/.picloud")


@dataclass(frozen=True)
class Settings:
    """Every configurable value, resolved once (see `load`) and then read-only."""

    # -- account / connection
    api_key: str | None = None
    api_secretkey: str | None = None
    server_url: str | None = None  # redis://host:port/db of the cluster
    use_simulator: bool = False
    signing_key: str | None = None  # the cluster's shared HMAC secret (workers, gateway)
    tenant_key: str | None = None  # hex: this API key's own signing key, issued with it
    # -- simulator / cloud.mp
    num_procs: int = 0  # 0 means the number of CPUs
    # -- transport
    max_transmit_data: int = MAX_TRANSMIT_DATA
    redis_socket_timeout: float = 15.0
    redis_connect_timeout: float = 3.0
    # -- job records
    retention_seconds: int = RETENTION_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    inline_result_limit: int = INLINE_RESULT_LIMIT
    output_limit: int = OUTPUT_LIMIT
    # -- worker reliability (read by workers)
    lease_seconds: float = LEASE_SECONDS
    orphan_seconds: float = ORPHAN_SECONDS
    visibility_timeout: int = 12 * 3600
    task_events: bool = False  # Flower switches worker events on remotely when it runs
    # -- isolation (read by workers): "shared" runs jobs in the pool processes (one
    # trusted team); "tenant" runs them in exec'd executors holding one tenant's key
    isolation: str = "shared"
    executors_per_process: int = 2  # executors a pool process keeps (least recent closed)
    memory_limits: str = ""  # per compute type overrides in MB, e.g. "c1=300,c2=800"
    env_dir: str = ""  # where workers cache built environments (builder.default_env_dir)
    env_cache_builds: int = 20  # builds kept there; the least recently used beyond are removed
    executor_uid_base: int = 200_000  # executors of API key N run as uid base+N (as root)
    drain_grace: float = 30.0  # seconds a stopping worker lets running jobs finish
    # idle pool processes take fresh jobs before their Celery message comes (workers.pool)
    fast_start: bool = False
    # seconds a pool process that ran out of work waits for fresh work before it goes
    # back to Celery (runner.stealing); 0: it goes back at once
    steal_linger: float = 0.003
    metrics_token: str | None = None  # bearer token for the gateway's /metrics (else off)
    progress: str = "auto"  # bars while waiting on many jobs: auto (terminal, Jupyter), on, off
    # -- logging
    log_filename: str = "cloud.log"
    log_level: str = "INFO"
    save_log: bool = True
    # -- files (S3 on a cluster; a directory in the simulator, default <config dir>/files)
    files_dir: str = ""
    s3_bucket: str = "picloud-files"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # team-mode arguments and results at least this big live in S3, not Redis (0: never)
    offload_bytes: int = 2 * 1024 * 1024
    # -- REST gateway (the base URL published functions are reached at)
    gateway_url: str = "http://127.0.0.1:8080"
    rest_max_body: int = 1024 * 1024
    simulator_rest_port: int = 0  # the simulator's local gateway (0: any free port)
    # -- admin credentials for cloud.account
    admin_password: str | None = None
    # failed dashboard sign-ins allowed per client address in 5 minutes (dashboard.throttle)
    sign_in_attempts: int = 10
    # dashboard page requests a second per signed-in key, in bursts of 5 s worth
    dashboard_rate: float = 20.0

    def __post_init__(self) -> None:
        if self.max_transmit_data <= 0 or self.max_transmit_data > MAX_TRANSMIT_CEILING:
            raise ConfigurationError(
                f"max_transmit_data must be between 1 and {MAX_TRANSMIT_CEILING}, "
                f"got {self.max_transmit_data}"
            )
        if self.progress not in ("auto", "on", "off"):
            raise ConfigurationError(f"progress must be auto, on or off, got {self.progress!r}")
        if self.isolation not in ("shared", "tenant"):
            raise ConfigurationError(
                f"isolation must be 'shared' or 'tenant', got {self.isolation!r}"
            )
        if not 0 <= self.steal_linger <= 1:
            raise ConfigurationError(
                f"steal_linger must be between 0 and 1 second, got {self.steal_linger}"
            )
        if not self.dashboard_rate > 0:
            raise ConfigurationError(f"dashboard_rate must be > 0, got {self.dashboard_rate}")
        if self.env_cache_builds < 1:
            raise ConfigurationError(f"env_cache_builds must be >= 1, got {self.env_cache_builds}")
        if self.sign_in_attempts < 1:
            raise ConfigurationError(f"sign_in_attempts must be >= 1, got {self.sign_in_attempts}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in _LOWEST:
            problem = _out_of_range(name, getattr(self, name))
            if problem:
                raise ConfigurationError(f"{name} {problem}")

    @property
    def simulated(self) -> bool:
        """The embedded default: without a server URL everything runs locally."""
        return self.use_simulator or not self.server_url

    @property
    def processes(self) -> int:
        """How many job processes the simulator runs (``num_procs``, else the CPUs)."""
        return self.num_procs or os.cpu_count() or 2

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (settings are frozen)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, config_dir: str | None = None, **overrides: Any) -> Settings:
        """Settings from cloudconf.py, then the environment, then `cloud.config`, then
        `overrides` (non-None ones), each above the last.

        A value that cannot be used is an error naming the setting, the value and where
        it came from (cloudconf.py's path, the environment variable, `cloud.config`)."""
        values: dict[str, Any] = {}
        values.update(_from_cloudconf(Path(config_dir or getconfigpath()) / CONFIG_FILENAME))
        values.update(_from_env())
        values.update(RUNTIME_OVERRIDES)  # coerced when assigned
        given = {k: v for k, v in overrides.items() if v is not None and k in _FIELDS}
        values.update({k: _coerce(k, v, "argument") for k, v in given.items()})
        return cls(**values)


RUNTIME_OVERRIDES: dict[str, Any] = {}
"""Values set through `cloud.config` in this process (above the environment)."""


def coerce(name: str, value: Any) -> Any:
    """`value` (assigned to `cloud.config`) converted to setting `name`'s type and
    checked against its range; ConfigurationError if impossible."""
    if name not in _FIELDS:
        raise AttributeError(f"no setting named {name!r}")
    return _coerce(name, value, "cloud.config")


def setting_names() -> list[str]:
    """Names of every setting (what cloudconf.py and `cloud.config` accept)."""
    return list(_FIELDS)


def write_cloudconf(path: Path, values: dict[str, Any]) -> None:
    """Write ``name = repr(value)`` lines; the file may hold secrets, so it is 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ['"""picloud-compat settings (read with ast.literal_eval, never executed)."""', ""]
    lines += [f"{name} = {value!r}" for name, value in values.items() if value is not None]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


_FIELDS = {f.name: f for f in fields(Settings)}


def read_cloudconf(path: Path) -> dict[str, Any]:
    """Read ``name = literal`` assignments; unknown names are ignored, as PiCloud did."""
    if not path.is_file():
        return {}
    try:
        tree = ast.parse(path.read_text(), str(path))
    except SyntaxError as exc:
        raise ConfigurationError(f"{path} is not valid Python: {exc}") from exc
    out: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name) or target.id not in _FIELDS:
            continue
        try:
            out[target.id] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ConfigurationError(f"{path}: {target.id} must be a literal value") from exc
    # PiCloud wrote the string 'None' for an unset api_key.
    return {k: (None if v == "None" else v) for k, v in out.items()}


def _from_cloudconf(path: Path) -> dict[str, Any]:
    """cloudconf.py's values, converted. Unlike PiCloud's client, which warned and
    used its defaults, a malformed file or value is an error: ignoring a server URL
    would run the user's jobs on the simulator while they believe them on the cluster."""
    return {name: _coerce(name, value, str(path)) for name, value in read_cloudconf(path).items()}


def _from_env() -> dict[str, Any]:
    out = {}
    for name in _FIELDS:
        variable = ENV_PREFIX + name.upper()
        raw = os.environ.get(variable)
        if raw is not None and raw != "":
            out[name] = _coerce(name, raw, f"env {variable}")
    return out


_LOWEST: dict[str, tuple[float, bool]] = {
    # setting: (bound, whether the bound itself is allowed)
    "num_procs": (0, True),  # 0: the number of CPUs
    "retention_seconds": (1, True),
    "inline_result_limit": (0, True),
    "output_limit": (0, True),
    "offload_bytes": (0, True),  # 0: never
    "executors_per_process": (1, True),
    "visibility_timeout": (1, True),
    "rest_max_body": (1, True),
    "simulator_rest_port": (0, True),  # 0: any free port
    "drain_grace": (0, True),
    "redis_socket_timeout": (0, False),
    "redis_connect_timeout": (0, False),
    "lease_seconds": (0, False),
    "orphan_seconds": (0, False),
}
"""Lower bounds of numeric settings (a negative process count would start no process
and leave every job queued, a negative timeout would fail every connection)."""


def _out_of_range(name: str, value: Any) -> str | None:
    """What is wrong with `value` for setting `name`, if anything."""
    if name not in _LOWEST or value is None:
        return None
    bound, inclusive = _LOWEST[name]
    if value > bound or (inclusive and value == bound):
        return None
    shown = int(bound) if float(bound).is_integer() else bound
    return f"must be {'>=' if inclusive else '>'} {shown}, got {value!r}"


def _coerce(name: str, value: Any, source: str) -> Any:
    """`value` converted to setting `name`'s type and range; ConfigurationError naming
    the setting, the value and where it came from (`source`)."""
    default: object = _FIELDS[name].default
    kind: type[object] = type(default) if default is not None else str
    if value is None:
        return None
    try:
        converted = _convert(kind, value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"setting {name} ({source}) must be {kind.__name__}, got {value!r}"
        ) from exc
    problem = _out_of_range(name, converted)
    if problem:
        raise ConfigurationError(f"setting {name} ({source}) {problem}")
    return converted


def _convert(kind: type[object], value: Any) -> Any:
    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return lowered in ("1", "true", "yes", "on")
        return bool(value)
    if kind is int:
        return int(value)
    if kind is float:
        return float(value)
    return str(value)
