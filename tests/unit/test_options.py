from __future__ import annotations

from typing import Any

import pytest

from picloud_compat.config.compute_types import DEFAULT_PRIORITY, DEFAULT_TYPE
from picloud_compat.options import (
    RESERVED,
    Callbacks,
    SubmitOptions,
    parse,
    parse_depends_on,
    split_kwargs,
)


def _cb(*_: Any) -> None:
    pass


def _other_cb(*_: Any) -> None:
    pass


# -- defaults and good values -------------------------------------------------------


def test_empty_parse_gives_defaults() -> None:
    options, callbacks = parse({})
    assert options == SubmitOptions()
    assert options.priority == DEFAULT_PRIORITY
    assert options.type == DEFAULT_TYPE
    assert options.cores == 1
    assert options.restartable is True
    assert options.depends_on == ()
    assert options.depends_on_errors == "abort"
    assert options.max_runtime is None
    assert options.vol == ()
    assert dict(options.os_env_vars) == {}
    assert callbacks == Callbacks()
    assert not callbacks


@pytest.mark.parametrize(
    ("kwargs", "attr", "expected"),
    [
        ({"_label": "my job"}, "label", "my job"),
        ({"_label": "x" * 255}, "label", "x" * 255),
        ({"_priority": 0}, "priority", 0),
        ({"_priority": 9}, "priority", 9),
        ({"_type": "f2"}, "type", "f2"),
        ({"_type": "s1"}, "type", "s1"),
        ({"_cores": 1}, "cores", 1),
        ({"_cores": 4, "_type": "c2"}, "cores", 4),
        ({"_cores": 16, "_type": "f2"}, "cores", 16),
        ({"_restartable": False}, "restartable", False),
        ({"_depends_on": 5}, "depends_on", (5,)),
        ({"_depends_on": [3, 1, 2]}, "depends_on", (3, 1, 2)),
        ({"_depends_on": (7,)}, "depends_on", (7,)),
        ({"_depends_on": range(1, 4)}, "depends_on", (1, 2, 3)),
        ({"_depends_on": [4, 2, 4, 3, 2]}, "depends_on", (4, 2, 3)),
        ({"_depends_on": []}, "depends_on", ()),
        ({"_depends_on": None}, "depends_on", ()),
        ({"_depends_on_errors": "ignore"}, "depends_on_errors", "ignore"),
        ({"_depends_on_errors": "abort"}, "depends_on_errors", "abort"),
        ({"_max_runtime": 0.5}, "max_runtime", 0.5),
        ({"_max_runtime": 3}, "max_runtime", 3.0),
        ({"_profile": True}, "profile", True),
        ({"_profile": 1}, "profile", True),
        ({"_kill_process": True}, "kill_process", True),
        ({"_kill_process": 0}, "kill_process", False),
        ({"_fast_serialization": 2}, "fast_serialization", 2),
        ({"_env": "my-env"}, "env", "my-env"),
        ({"_vol": "x"}, "vol", ("x",)),
        ({"_vol": ["a", "b"]}, "vol", ("a", "b")),
        ({"_vol": ("a",)}, "vol", ("a",)),
        ({"_high_cpu": True, "_type": "m1"}, "type", "c2"),
        ({"_high_cpu": False, "_type": "m1"}, "type", "m1"),
        ({"_high_cpu": 1}, "type", "c2"),
    ],
)
def test_good_values(kwargs: dict[str, Any], attr: str, expected: Any) -> None:
    options, _ = parse(kwargs)
    assert getattr(options, attr) == expected
    assert type(getattr(options, attr)) is type(expected)


def test_max_runtime_is_float_minutes() -> None:
    options, _ = parse({"_max_runtime": 2})
    assert isinstance(options.max_runtime, float)


def test_high_cpu_allows_c2_core_counts() -> None:
    options, _ = parse({"_high_cpu": True, "_cores": 8})
    assert (options.type, options.cores) == ("c2", 8)


# -- bad values: exception type, keyword and value named -----------------------------

BAD = [
    # (kwargs, exception, fragments the message must contain)
    ({"_priority": "x"}, TypeError, ["_priority", "'x'"]),
    ({"_priority": -1}, ValueError, ["_priority", "-1"]),
    ({"_priority": True}, TypeError, ["_priority", "True"]),
    ({"_priority": 1.5}, TypeError, ["_priority", "1.5"]),
    ({"_priority": None}, TypeError, ["_priority", "None"]),
    ({"_restartable": 1}, TypeError, ["_restartable", "1"]),
    ({"_restartable": "yes"}, TypeError, ["_restartable", "'yes'"]),
    ({"_max_runtime": 0}, ValueError, ["_max_runtime", "0"]),
    ({"_max_runtime": -2.5}, ValueError, ["_max_runtime", "-2.5"]),
    ({"_max_runtime": float("nan")}, ValueError, ["_max_runtime", "nan"]),
    ({"_max_runtime": "5"}, TypeError, ["_max_runtime", "'5'"]),
    ({"_max_runtime": True}, TypeError, ["_max_runtime", "True"]),
    ({"_cores": 0}, TypeError, ["_cores", "0"]),
    ({"_cores": -4}, TypeError, ["_cores", "-4"]),
    ({"_cores": "2"}, TypeError, ["_cores", "'2'"]),
    ({"_cores": True}, TypeError, ["_cores", "True"]),
    ({"_cores": 2}, ValueError, ["_cores", "2", "'c1'"]),
    ({"_cores": 3, "_type": "c2"}, ValueError, ["_cores", "3", "'c2'"]),
    ({"_cores": 16, "_type": "m1"}, ValueError, ["_cores", "16", "'m1'"]),
    ({"_fast_serialization": True}, TypeError, ["_fast_serialization", "True"]),
    ({"_fast_serialization": "2"}, TypeError, ["_fast_serialization", "'2'"]),
    ({"_fast_serialization": -1}, ValueError, ["_fast_serialization", "-1"]),
    ({"_depends_on_errors": "skip"}, ValueError, ["_depends_on_errors", "'skip'"]),
    ({"_depends_on_errors": 1}, TypeError, ["_depends_on_errors", "1"]),
    ({"_depends_on": "3"}, TypeError, ["_depends_on", "'3'"]),
    ({"_depends_on": b"3"}, TypeError, ["_depends_on", "b'3'"]),
    ({"_depends_on": 2.0}, TypeError, ["_depends_on", "2.0"]),
    ({"_depends_on": True}, TypeError, ["_depends_on", "True"]),
    ({"_depends_on": [1, "2"]}, TypeError, ["_depends_on", "'2'"]),
    ({"_depends_on": [1, False]}, TypeError, ["_depends_on", "False"]),
    ({"_depends_on": 0}, ValueError, ["_depends_on", "0"]),
    ({"_depends_on": [4, -1]}, ValueError, ["_depends_on", "-1"]),
    ({"_vol": [1]}, TypeError, ["_vol", "[1]"]),
    ({"_vol": 5}, TypeError, ["_vol", "5"]),
    ({"_vol": b"x"}, TypeError, ["_vol", "b'x'"]),
    ({"_vol": {"a": "b"}}, TypeError, ["_vol", "{'a': 'b'}"]),
    ({"_type": "z9"}, ValueError, ["_type", "'z9'"]),
    ({"_type": 2}, TypeError, ["_type", "2"]),
    ({"_high_cpu": "yes"}, TypeError, ["_high_cpu", "'yes'"]),
    ({"_high_cpu": 2}, TypeError, ["_high_cpu", "2"]),
    ({"_profile": "no"}, TypeError, ["_profile", "'no'"]),
    ({"_kill_process": None}, TypeError, ["_kill_process", "None"]),
    ({"_label": 5}, TypeError, ["_label", "5"]),
    ({"_label": b"job"}, TypeError, ["_label", "b'job'"]),
    ({"_label": "caf\u00e9"}, ValueError, ["_label", "'caf\u00e9'"]),
    ({"_label": "two\nlines"}, ValueError, ["_label", "'two\\nlines'"]),
    ({"_label": "x" * 256}, ValueError, ["_label", "255", "256"]),
    ({"_env": 5}, TypeError, ["_env", "5"]),
    ({"_os_env_vars": "PATH"}, TypeError, ["_os_env_vars", "'PATH'"]),
    ({"_os_env_vars": 7}, TypeError, ["_os_env_vars", "7"]),
    ({"_os_env_vars": ["PATH", 3]}, TypeError, ["_os_env_vars", "3"]),
    ({"_os_env_vars": {"A": 1}}, TypeError, ["_os_env_vars", "'A'", "1"]),
    ({"_callback": 5}, TypeError, ["_callback", "5"]),
    ({"_callback": [_cb, "nope"]}, TypeError, ["_callback", "'nope'"]),
    ({"_callback_on_error": "f"}, TypeError, ["_callback_on_error", "'f'"]),
]


@pytest.mark.parametrize(("kwargs", "exc", "fragments"), BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_values(kwargs: dict[str, Any], exc: type[Exception], fragments: list[str]) -> None:
    with pytest.raises(exc) as info:
        parse(kwargs)
    assert type(info.value) is exc
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_every_reserved_keyword_is_covered_by_the_bad_value_table() -> None:
    covered = {key for kwargs, _, _ in BAD for key in kwargs}
    assert covered == RESERVED


def test_unknown_reserved_keyword_is_refused() -> None:
    with pytest.raises(ValueError, match="_bogus"):
        parse({"_bogus": 1})


def test_unknown_keywords_are_all_named_sorted() -> None:
    with pytest.raises(ValueError, match="_a, _z"):
        parse({"_z": 1, "_a": 2, "_label": "ok"})


def test_parse_depends_on_directly() -> None:
    assert parse_depends_on(None) == ()
    assert parse_depends_on(9) == (9,)
    assert parse_depends_on(iter([2, 2, 1])) == (2, 1)


# -- _os_env_vars --------------------------------------------------------------------


def test_os_env_vars_list_copies_only_set_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PC_UNIT_SET", "value-1")
    monkeypatch.setenv("PC_UNIT_EMPTY", "")
    monkeypatch.delenv("PC_UNIT_UNSET", raising=False)
    options, _ = parse({"_os_env_vars": ["PC_UNIT_SET", "PC_UNIT_UNSET", "PC_UNIT_EMPTY"]})
    assert dict(options.os_env_vars) == {"PC_UNIT_SET": "value-1", "PC_UNIT_EMPTY": ""}


def test_os_env_vars_tuple_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PC_UNIT_SET", "v")
    options, _ = parse({"_os_env_vars": ("PC_UNIT_SET",)})
    assert dict(options.os_env_vars) == {"PC_UNIT_SET": "v"}


def test_os_env_vars_dict_form_is_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PC_UNIT_X", raising=False)
    given = {"PC_UNIT_X": "1", "OTHER": "two"}
    options, _ = parse({"_os_env_vars": given})
    assert dict(options.os_env_vars) == given
    given["PC_UNIT_X"] = "changed"
    assert dict(options.os_env_vars)["PC_UNIT_X"] == "1"


# -- callbacks -----------------------------------------------------------------------


def test_single_callback() -> None:
    _, callbacks = parse({"_callback": _cb})
    assert callbacks.on_success == (_cb,)
    assert callbacks.on_error == ()
    assert callbacks


def test_callback_list_and_error_callbacks() -> None:
    _, callbacks = parse({"_callback": [_cb, _other_cb], "_callback_on_error": (_other_cb,)})
    assert callbacks.on_success == (_cb, _other_cb)
    assert callbacks.on_error == (_other_cb,)


def test_callable_objects_are_callbacks() -> None:
    class Notify:
        def __call__(self, jid: int) -> None:
            pass

    notify = Notify()
    _, callbacks = parse({"_callback_on_error": notify})
    assert callbacks.on_error == (notify,)


# -- split_kwargs --------------------------------------------------------------------


def test_split_kwargs() -> None:
    kwargs = {"_label": "x", "a": 1, "_priority": 2, "_private": 3}
    reserved, user = split_kwargs(kwargs)
    assert reserved == {"_label": "x", "_priority": 2}
    assert user == {"a": 1, "_private": 3}
    assert kwargs == {"_label": "x", "a": 1, "_priority": 2, "_private": 3}  # not mutated


def test_split_kwargs_empty() -> None:
    assert split_kwargs({}) == ({}, {})
