"""The argument record of each Lua script, typed: what ``A.<name>`` holds in the script.

A record travels as one msgpack map in ``ARGV[1]`` (see `scripts`); lists of jids,
blobs or outcomes follow it as plain ``ARGV``. mypy checks every record built in Python
against these, so a misspelt or missing field fails CI instead of reaching Lua as nil.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class TenantArgs(TypedDict):
    """``delete.lua``, ``unfinished.lua``: just the tenant (jids follow)."""

    tenant: str


class WatchArgs(TenantArgs):
    """``watch.lua``: who is to be told (jids follow)."""

    cid: str


class HoldArgs(WatchArgs):
    """``hold.lua``: how many notices the client needs before it wants waking."""

    wanted: int
    ttl_ms: int


class UnclaimArgs(TenantArgs):
    """``unclaim.lua``: the attempt giving jobs back (jids follow)."""

    token: str


class AppendOutputArgs(TenantArgs):
    """``append_output.lua``: a running job's new output."""

    jid: int
    limit: int
    stdout: str
    stderr: str


class _Retention(TenantArgs):
    now: float
    retention: int
    inline_limit: int


class SubmitArgs(_Retention):
    """``submit.lua`` (the function blob, the dependency jids, then one argument blob
    per job, follow)."""

    cid: str
    first: int | None  # None: the script allocates
    count: int
    chunks: list[int]  # the chunk sizes, in jid order
    templates: dict[str, str]  # a chunk size's Celery message, with @JID@ and @TAG@ left in
    spec_id: str
    spec: str
    fn_sha: str
    queue: str  # the Redis list (queue and priority step)
    deperr: str
    parent: int | None
    args_stored: bool  # big arguments were SET around the script


class ClaimArgs(_Retention):
    """``claim.lua``."""

    worker: str
    warden: str
    token: str
    lease: str
    lease_until: float
    first: int
    count: int
    start: int
    max_jobs: int
    max_bytes: int


class FinishArgs(_Retention):
    """``finish.lua`` (13 values per outcome follow)."""

    output_limit: int
    day: str  # UTC date the outcomes are counted on (usage)
    ending: int  # 0 no, 1 the runner ends the chunk, 2 ends it having run all of it
    lease: str
    first: int
    count: int


class AdvanceArgs(ClaimArgs):
    """``advance.lua``: claim.lua's fields and finish.lua's (outcomes follow)."""

    output_limit: int
    day: str


class KillArgs(_Retention):
    """``kill.lua`` (jids follow, unless `all`)."""

    reason: str
    all: bool


class RecoverArgs(_Retention):
    """``recover.lua``."""

    first: int
    count: int
    dead: str
    max_attempts: int
    reason: str
    lease: str  # '' when no lease is to be dropped


class SettleArgs(TypedDict):
    """The thief's previous chunk, ended in its steal (outcomes follow as in finish.lua)."""

    tenant: str
    first: int
    count: int
    lease: str
    ran_all: bool
    output_limit: int
    day: str


class StealArgs(TypedDict):
    """``steal.lua``: where to look, and claim.lua's fields for the thief."""

    types: list[str]  # compute types whose offers may be taken
    whole: int
    probes: int
    now: float
    worker: str
    warden: str
    token: str
    lease_until: float
    max_bytes: int
    retention: int
    inline_limit: int
    settle: NotRequired[SettleArgs]


ScriptArgs = (
    TenantArgs
    | WatchArgs
    | HoldArgs
    | UnclaimArgs
    | AppendOutputArgs
    | SubmitArgs
    | ClaimArgs
    | FinishArgs
    | KillArgs
    | RecoverArgs
    | StealArgs
)
