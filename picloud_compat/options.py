"""PiCloud's reserved keyword arguments (``_label``, ``_depends_on``, ...), validated.

Everything here runs *before* anything is submitted: a bad value raises `TypeError`
or `ValueError` naming the keyword and the value, and no job is created.
Python 3 traps the original client never met are handled explicitly: a `str` is
iterable but is never accepted where a list of names or jids is expected, and `bool`
is an `int` but is not accepted as a priority, core count or jid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from picloud_compat.config.compute_types import COMPUTE_TYPES, DEFAULT_PRIORITY, DEFAULT_TYPE

RESERVED = frozenset(
    {
        "_callback",
        "_callback_on_error",
        "_cores",
        "_depends_on",
        "_depends_on_errors",
        "_env",
        "_fast_serialization",
        "_high_cpu",
        "_kill_process",
        "_label",
        "_max_runtime",
        "_os_env_vars",
        "_priority",
        "_profile",
        "_restartable",
        "_type",
        "_vol",
    }
)
# Keys that only make sense for jobs submitted one by one from this process.
CALLBACK_KEYS = frozenset({"_callback", "_callback_on_error"})


@dataclass(frozen=True)
class SubmitOptions:
    """What every job of one `call` / `map` shares; stored once per submission."""

    label: str | None = None
    priority: int = DEFAULT_PRIORITY
    type: str = DEFAULT_TYPE
    cores: int = 1
    restartable: bool = True
    depends_on: tuple[int, ...] = ()
    depends_on_errors: str = "abort"
    max_runtime: float | None = None  # minutes
    profile: bool = False
    kill_process: bool = False
    fast_serialization: int = 0
    env: str | None = None
    vol: tuple[str, ...] = ()
    os_env_vars: tuple[tuple[str, str], ...] = ()  # pairs, so options stay hashable


@dataclass(frozen=True)
class Callbacks:
    """Functions to run on the client when a job finishes (``_callback*`` options)."""

    on_success: tuple[Callable[..., Any], ...] = ()
    on_error: tuple[Callable[..., Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.on_success or self.on_error)


def split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate reserved `_kwargs` from those meant for the user's function."""
    reserved = {k: v for k, v in kwargs.items() if k in RESERVED}
    user = {k: v for k, v in kwargs.items() if k not in RESERVED}
    return reserved, user


def parse(reserved: Mapping[str, Any]) -> tuple[SubmitOptions, Callbacks]:
    """Validate reserved kwargs; raise TypeError/ValueError naming the first bad one."""
    unknown = set(reserved) - RESERVED
    if unknown:
        raise ValueError(f"unknown reserved keyword argument(s): {', '.join(sorted(unknown))}")
    get = reserved.get
    job_type = _type(get("_type", DEFAULT_TYPE))
    if _flag("_high_cpu", get("_high_cpu", False)):
        job_type = "c2"
    options = SubmitOptions(
        label=_label(get("_label")),
        priority=_int("_priority", get("_priority", DEFAULT_PRIORITY), minimum=0),
        type=job_type,
        cores=_cores(get("_cores", 1), job_type),
        restartable=_strict_bool("_restartable", get("_restartable", True)),
        depends_on=parse_depends_on(get("_depends_on")),
        depends_on_errors=_depends_on_errors(get("_depends_on_errors", "abort")),
        max_runtime=_max_runtime(get("_max_runtime")),
        profile=_flag("_profile", get("_profile", False)),
        kill_process=_flag("_kill_process", get("_kill_process", False)),
        fast_serialization=_int("_fast_serialization", get("_fast_serialization", 0), minimum=0),
        env=_optional_str("_env", get("_env")),
        vol=_names("_vol", get("_vol", ())),
        os_env_vars=_os_env_vars(get("_os_env_vars")),
    )
    callbacks = Callbacks(
        on_success=_callbacks("_callback", get("_callback")),
        on_error=_callbacks("_callback_on_error", get("_callback_on_error")),
    )
    return options, callbacks


def _bad_type(name: str, value: Any, expected: str) -> TypeError:
    return TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(name: str, value: Any, *, minimum: int) -> int:
    if not _is_int(value):
        raise _bad_type(name, value, "an integer")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _strict_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad_type(name, value, "True or False")
    return value


def _flag(name: str, value: Any) -> bool:
    # PiCloud applied bool() to these; we also accept 0/1 but refuse e.g. "yes".
    if isinstance(value, bool):
        return value
    if _is_int(value) and value in (0, 1):
        return bool(value)
    raise _bad_type(name, value, "True or False")


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_type("_label", value, "a string")
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"_label must be printable ASCII, got {value!r}")
    if len(value) > 255:
        raise ValueError(f"_label must be at most 255 characters, got {len(value)}")
    return value


def _type(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_type("_type", value, "a string")
    if value not in COMPUTE_TYPES:
        raise ValueError(f"_type must be one of {', '.join(COMPUTE_TYPES)}, got {value!r}")
    return value


def _cores(value: Any, job_type: str) -> int:
    if not _is_int(value) or value <= 0:
        raise _bad_type("_cores", value, "a positive integer")
    allowed = COMPUTE_TYPES[job_type].cores
    if value not in allowed:
        raise ValueError(
            f"_cores={value} is not available on type {job_type!r} "
            f"(allowed: {', '.join(map(str, allowed))})"
        )
    return int(value)


def parse_depends_on(value: Any) -> tuple[int, ...]:
    """``_depends_on`` (a jid or an iterable of jids) as distinct jids, in order."""
    if value is None:
        return ()
    if _is_int(value):
        jids: Iterable[Any] = (value,)
    elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _bad_type("_depends_on", value, "a jid or a list of jids")
    else:
        jids = value
    out: list[int] = []
    for jid in jids:
        if not _is_int(jid):
            raise TypeError(f"_depends_on list can only contain jids (integers), got {jid!r}")
        if jid <= 0:
            raise ValueError(f"_depends_on contains an invalid jid {jid!r}")
        out.append(int(jid))
    return tuple(dict.fromkeys(out))  # de-duplicated, order kept


def _depends_on_errors(value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_type("_depends_on_errors", value, "a string")
    if value not in ("abort", "ignore"):
        raise ValueError(f'_depends_on_errors must be "abort" or "ignore", got {value!r}')
    return value


def _max_runtime(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type("_max_runtime", value, "a number of minutes")
    if not value > 0:
        raise ValueError(f"_max_runtime must be > 0 minutes, got {value!r}")
    return float(value)


def _optional_str(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _bad_type(name, value, "a string")


def _names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable) or isinstance(value, bytes | Mapping):
        raise _bad_type(name, value, "a string or a list of strings")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise _bad_type(name, value, "a string or a list of strings")
    return items


def _os_env_vars(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"_os_env_vars must map names to strings, got {k!r}: {v!r}")
            out[k] = v
        return tuple(sorted(out.items()))
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _bad_type("_os_env_vars", value, "a list of variable names or a dict")
    names = list(value)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"_os_env_vars names must be strings, got {n!r}")
    # Only the variables set locally travel, as in the original client.
    return tuple((n, os.environ[n]) for n in names if n in os.environ)


def _callbacks(name: str, value: Any) -> tuple[Callable[..., Any], ...]:
    if value is None:
        return ()
    funcs = tuple(value) if isinstance(value, list | tuple) else (value,)
    for f in funcs:
        if not callable(f):
            raise TypeError(f"{name}: all callbacks must be callable, got {f!r}")
    return funcs
