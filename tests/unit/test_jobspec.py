"""`JobSpec`: one typed form of a submission's options, one JSON form, one id."""

from __future__ import annotations

import dataclasses
import json

from picloud_compat.jobspec import LUA_FIELDS, MISSING_SPEC, JobSpec
from picloud_compat.options import SubmitOptions, parse


def spec_of(reserved: dict[str, object], fn: str = "f", name: str = "mod.func") -> JobSpec:
    options, _ = parse(reserved)
    return JobSpec.of(options, fn, name)


def test_json_is_compact_sorted_and_complete() -> None:
    spec = spec_of({"_label": "j", "_depends_on": [2, 1], "_vol": "v", "_max_runtime": 1})
    data = json.loads(spec.json)
    assert list(data) == sorted(data)
    assert " " not in spec.json
    assert (data["fn"], data["name"], data["label"]) == ("f", "mod.func", "j")
    assert data["depends_on"] == [2, 1]
    assert data["vol"] == ["v"]
    assert data["max_runtime"] == 1.0
    assert data["os_env_vars"] == {}
    assert set(data) == {f.name for f in dataclasses.fields(JobSpec)}


def test_round_trip_is_exact() -> None:
    spec = spec_of(
        {"_label": "x", "_os_env_vars": {"B": "2", "A": "1"}, "_depends_on": [3], "_profile": True}
    )
    back = JobSpec.from_json(spec.json)
    assert back == spec
    assert back.id == spec.id
    assert back.os_env_vars == (("A", "1"), ("B", "2"))
    assert (
        back.options()
        == parse(
            {
                "_label": "x",
                "_os_env_vars": {"A": "1", "B": "2"},
                "_depends_on": [3],
                "_profile": True,
            }
        )[0]
    )


def test_id_is_content_addressed() -> None:
    a = spec_of({"_label": "x", "_os_env_vars": {"A": "1", "B": "2"}})
    b = spec_of({"_label": "x", "_os_env_vars": {"B": "2", "A": "1"}})
    assert a.id == b.id
    assert a.id != spec_of({"_label": "y"}).id
    assert a.id != spec_of({"_label": "x", "_os_env_vars": {"A": "1", "B": "2"}}, fn="g").id
    assert len(a.id) == 20
    int(a.id, 16)


def test_id_known_value() -> None:
    """The id is the first 20 hex digits of sha256 of the JSON: stable across runs."""
    assert JobSpec().id == "3f15b1948f448319a44b"


def test_unknown_fields_from_newer_clients_are_ignored() -> None:
    doc = json.loads(spec_of({}).json)
    doc["from_the_future"] = 1
    assert JobSpec.from_json(json.dumps(doc)) == spec_of({})


def test_rest_fields_travel() -> None:
    options = SubmitOptions()
    spec = JobSpec.of(options, "f", "n", rest_label="r", rest_encoding="raw")
    assert JobSpec.from_json(spec.json).rest_encoding == "raw"
    assert spec.id != JobSpec.of(options, "f", "n").id


def test_lua_fields_are_spec_fields() -> None:
    names = {f.name for f in dataclasses.fields(JobSpec)}
    assert set(LUA_FIELDS.values()) <= names


def test_missing_spec_has_no_function() -> None:
    assert MISSING_SPEC.fn == ""
    assert MISSING_SPEC.restartable is True
