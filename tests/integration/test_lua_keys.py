"""The Lua key builders (generated from keys.py) build exactly the Python keys, in Redis."""

from __future__ import annotations

import pytest

from picloud_compat.store import keys

SAMPLES = {
    "t": "tenant-1",
    "jid": 42,
    "sha": "ab12",
    "oid": "o9",
    "label": "nightly",
    "marker": "cron:nightly:1700000000",
    "kind": "cron",
    "chunk": "5+3",
    "cid": "c7",
    "worker": "host:123",
    "queue": "c2",
}


@pytest.mark.parametrize("name", list(keys._TEMPLATES))
def test_lua_key_matches_python(redis_server, name):
    _, params = keys._TEMPLATES[name]
    args = [SAMPLES[p] for p in params]
    lua_args = ", ".join(repr(a) if isinstance(a, str) else str(a) for a in args)
    script = keys.lua_prelude() + f"return K['{name}']({lua_args})"
    template = keys._TEMPLATES[name][0]
    expected = template.format(**dict(zip(params, args, strict=True)))
    assert redis_server.client().eval(script, 0).decode() == expected
