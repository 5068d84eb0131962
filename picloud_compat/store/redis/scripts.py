"""The Lua scripts: how they are assembled, called, and how their errors come back.

Each script is the generated prelude (key builders from `store.keys`, the status
transition table from `picloud_compat.status`, the spec field names from
`picloud_compat.jobspec`) + ``lua/lib.lua`` + its own body. So a key's spelling, a
legal status move or a spec field cannot drift between Python and Lua.

Calling convention: ``ARGV[1]`` is one msgpack map of named scalars (the script's
argument record, read as ``A.name``); lists of jids, blobs or outcomes follow in the
remaining ``ARGV``. A script refuses with ``PCERR <json>``, where the JSON carries a
``code`` and its fields; `raise_script_error` turns that into the platform's exception.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any, cast

import msgpack
import redis
import redis.exceptions as rexc
from redis.client import Pipeline
from redis.commands.core import Script

from picloud_compat.errors import CloudException, InvalidCredentials, UnknownJobError
from picloud_compat.jobspec import LUA_FIELDS
from picloud_compat.status import TRANSITIONS
from picloud_compat.store import keys
from picloud_compat.store.records import RUNTIME_BUCKETS, MissingFunction
from picloud_compat.store.redis.arguments import ScriptArgs

NAMES = (
    "submit",
    "claim",
    "finish",
    "advance",
    "kill",
    "delete",
    "watch",
    "hold",
    "unclaim",
    "recover",
    "append_output",
    "unfinished",
    "steal",
)
ERROR_PREFIX = "PCERR"


def prelude() -> str:
    """Generated Lua: key builders `K`, legal moves `MOVES`, spec field names `SPEC`,
    the runtime histogram's bounds and stats fields."""
    lines = [keys.lua_prelude()]
    lines.append("local MOVES = {")
    for current, allowed in TRANSITIONS.items():
        targets = ", ".join(f"['{s.value}'] = true" for s in sorted(allowed))
        lines.append(f"  ['{current.value}'] = {{{targets}}},")
    lines.append("}")
    spec = ", ".join(f"{name} = '{field}'" for name, field in LUA_FIELDS.items())
    lines.append(f"local SPEC = {{{spec}}}")
    lines.append(f"local RUNTIME_BUCKETS = {{{', '.join(repr(b) for b in RUNTIME_BUCKETS)}}}")
    fields = ", ".join(f"'runtime:{i}'" for i in range(1, len(RUNTIME_BUCKETS) + 2))
    lines.append(f"local RUNTIME_FIELD = {{{fields}}}  -- the histogram's stats fields")
    lines.append("local A = cmsgpack.unpack(ARGV[1])")
    return "\n".join(lines) + "\n"


@cache
def source(name: str) -> str:
    """The full text of script `name`, as sent to Redis."""
    lua = resources.files("picloud_compat.store.redis").joinpath("lua")
    lib = lua.joinpath("lib.lua").read_text()
    body = lua.joinpath(f"{name}.lua").read_text()
    return prelude() + lib + body


def register(client: redis.Redis) -> dict[str, Script]:
    """Script objects (EVALSHA with automatic reload) for every script."""
    return {name: client.register_script(source(name)) for name in NAMES}


def call(script: Script, record: ScriptArgs, rest: Sequence[Any] = ()) -> Any:
    """Run `script` with its argument record and trailing list arguments (in a
    pipeline: `queue_call`). The reply is whatever the script returns (Redis's
    conversion of Lua values), hence Any.
    """
    args = [msgpack.packb(record, use_bin_type=False), *rest]  # Redis's cmsgpack has no bin type
    return script(keys=[], args=args)


def queue_call(
    pipe: Pipeline, script: Script, record: ScriptArgs, rest: Sequence[Any] = ()
) -> None:
    """Queue `script` on a pipeline by its sha alone. (Given the Script object, redis-py
    asks Redis which scripts it has before every such pipeline: a round trip more.) The
    caller finds NoScriptError among the results if Redis lost its scripts (a restart):
    the script did not run, and `reload` loads it to send again."""
    pipe.evalsha(script.sha, 0, msgpack.packb(record, use_bin_type=False), *rest)


def queue_eval(pipe: Pipeline, script: Script, record: ScriptArgs) -> None:
    """Queue `script` on a pipeline with its text (EVAL): Redis runs its cached copy, or
    compiles it if it lost its scripts (a restart), so the commands queued after it never
    run without it. For scripts whose pipeline cannot be retried (a blocking pop)."""
    text = cast(str, script.script)  # `register` made it from our source text
    pipe.eval(text, 0, msgpack.packb(record, use_bin_type=False))


def reload(client: redis.Redis, script: Script) -> None:
    """Load `script` again (after NoScriptError from a `queue_call`)."""
    script.sha = client.script_load(script.script)


def raise_script_error(exc: rexc.ResponseError) -> None:
    """Re-raise a script's typed refusal as the platform's exception (others as is)."""
    text = str(exc)
    if not text.startswith(ERROR_PREFIX):
        raise exc
    body = json.loads(text[len(ERROR_PREFIX) :].split("script:", 1)[0].strip())
    code = body["code"]
    if code == "no_function":
        raise MissingFunction(body.get("sha", "")) from None
    if code == "no_job":
        raise UnknownJobError(int(body["jid"])) from None
    if code == "inactive":
        raise InvalidCredentials("this API key is deactivated") from None
    if code == "unfinished":
        raise CloudException(
            f"cannot delete an unfinished job (status {body['status']}); kill it first",
            jid=int(body["jid"]),
            status=body["status"],
        ) from None
    if code == "bad_move":
        raise CloudException(
            f"illegal status move {body['from']} -> {body['to']} for job {body['jid']}"
        ) from None
    raise exc
