from __future__ import annotations

import ast
import re
from collections.abc import Callable

import pytest

from picloud_compat.store import keys
from picloud_compat.store.records import ChunkRef

# Sample argument values by template parameter name.
SAMPLES: dict[str, object] = {
    "t": "acme",
    "jid": 42,
    "sha": "ab12" * 16,
    "oid": "0123456789abcdef0123",
    "chunk": "17+250",
    "cid": "client-1",
    "worker": "w@host",
    "label": "nightly",
    "marker": "cron:nightly:1700000000",
    "kind": "cron",
    "queue": "c2",
}
LINE = re.compile(r"^K\['(\w+)'\] = function\(([\w, ]*)\) return (.+) end$")


def python_key(name: str) -> Callable[..., str]:
    """The public Python builder for template `name` (function or module constant)."""
    builder = getattr(keys, name, None)
    if callable(builder):
        return builder
    constant = getattr(keys, name.upper())
    return lambda: constant


def lua_entries() -> dict[str, tuple[list[str], str]]:
    lines = keys.lua_prelude().splitlines()
    assert lines[0] == "local K = {}"
    entries = {}
    for line in lines[1:]:
        match = LINE.match(line)
        assert match, line
        params = [p.strip() for p in match.group(2).split(",") if p.strip()]
        entries[match.group(1)] = (params, match.group(3))
    return entries


def evaluate(body: str, values: dict[str, object]) -> str:
    """Evaluate a generated `'lit' .. tostring(x) .. ...` expression without Lua."""
    out = []
    for part in body.split(" .. "):
        call = re.fullmatch(r"tostring\((\w+)\)", part)
        out.append(str(values[call.group(1)]) if call else ast.literal_eval(part))
    return "".join(out)


def test_prelude_has_an_entry_for_every_template() -> None:
    prelude = keys.lua_prelude()
    assert prelude.endswith("\n")
    entries = lua_entries()
    assert set(entries) == set(keys._TEMPLATES)
    for name, (_, params) in keys._TEMPLATES.items():
        assert f"K['{name}'] = function({', '.join(params)})" in prelude
        assert entries[name][0] == list(params)


@pytest.mark.parametrize("name", list(keys._TEMPLATES))
def test_prelude_builds_the_same_keys_as_python(name: str) -> None:
    params, body = lua_entries()[name]
    args = [SAMPLES[p] for p in params]
    assert evaluate(body, dict(zip(params, args, strict=True))) == python_key(name)(*args)


def test_python_keys() -> None:
    assert keys.jid_counter("t1") == "pc:t1:jid"
    assert keys.job("t1", 5) == "pc:t1:j:5"
    assert keys.args("t1", 5) == "pc:t1:a:5"
    assert keys.result("t1", 5) == "pc:t1:r:5"
    assert keys.stdout("t1", 5) == "pc:t1:out:5"
    assert keys.stderr("t1", 5) == "pc:t1:err:5"
    assert keys.profile("t1", 5) == "pc:t1:prof:5"
    assert keys.function("t1", "abc") == "pc:t1:fn:abc"
    assert keys.options("t1", "oid") == "pc:t1:opt:oid"
    assert keys.dependents("t1", 5) == "pc:t1:kids:5"
    assert keys.waiting_chunk("t1", "1+2") == "pc:t1:wait:1+2"
    assert keys.watchers("t1", 5) == "pc:t1:w:5"
    assert keys.unfinished("t1") == "pc:t1:unfinished"
    assert keys.notices("t1", "c") == "pc:t1:n:c"
    assert keys.kill_queue("w1") == "pc:killq:w1"
    assert keys.tenant_job_pattern("t1") == "pc:t1:j:*"
    assert (keys.LEDGER, keys.LEDGER_TIMES, keys.LEASES) == (
        "pc:ledger",
        "pc:ledger:t",
        "pc:leases",
    )
    assert (keys.WORKERS, keys.REAPER_LOCK, keys.ORPHAN_SUSPECTS) == (
        "pc:workers",
        "pc:reaper",
        "pc:orphans",
    )


def test_every_key_has_the_prefix() -> None:
    for name, (_, params) in keys._TEMPLATES.items():
        assert python_key(name)(*[SAMPLES[p] for p in params]).startswith(keys.PREFIX)


def test_tenants_do_not_share_keys() -> None:
    assert keys.job("a", 1) != keys.job("b", 1)
    assert keys.job("a", 12) != keys.job("a1", 2)


def test_chunk_id() -> None:
    assert keys.chunk_id(17, 250) == "17+250"


@pytest.mark.parametrize(
    ("tenant", "first", "count"),
    [("acme", 1, 1), ("t0123456789ab", 100001, 2500), ("with/slash", 3, 4), ("a+b", 9, 10)],
)
def test_chunk_key_round_trip(tenant: str, first: int, count: int) -> None:
    chunk = ChunkRef(tenant, first, count)
    assert chunk.key == f"{tenant}/{first}+{count}"
    assert ChunkRef.parse(chunk.key) == chunk
