"""Every Redis key the platform uses, defined once for Python *and* Lua.

Per-tenant keys live under ``pc:{tenant}:``; a tenant is an API key, so one key can
never address another's jobs. Cluster-wide bookkeeping (chunk ledger, leases,
workers) lives directly under ``pc:``.

The Lua scripts get their key builders from `lua_prelude()`, generated from the same
templates, so a key's spelling cannot drift between the two languages.
"""

from __future__ import annotations

import re

PREFIX = "pc:"

# name -> (template, argument names). `{t}` is the tenant.
_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "jid_counter": ("pc:{t}:jid", ("t",)),
    "job": ("pc:{t}:j:{jid}", ("t", "jid")),
    "args": ("pc:{t}:a:{jid}", ("t", "jid")),
    "result": ("pc:{t}:r:{jid}", ("t", "jid")),
    "stdout": ("pc:{t}:out:{jid}", ("t", "jid")),
    "stderr": ("pc:{t}:err:{jid}", ("t", "jid")),
    "profile": ("pc:{t}:prof:{jid}", ("t", "jid")),
    "function": ("pc:{t}:fn:{sha}", ("t", "sha")),
    "options": ("pc:{t}:opt:{oid}", ("t", "oid")),
    # chunk ids (`first+count`) of waiting chunks that depend on this jid
    "dependents": ("pc:{t}:kids:{jid}", ("t", "jid")),
    # a chunk whose jobs wait for parents: pending count, policy, queue, message
    "waiting_chunk": ("pc:{t}:wait:{chunk}", ("t", "chunk")),
    # client ids (besides the submitter) waiting to hear that this jid finished
    "watchers": ("pc:{t}:w:{jid}", ("t", "jid")),
    # chunk ids (`first+count`) that may still hold unfinished jobs; a chunk leaves the
    # set once a scan finds all its jobs finished (one entry per chunk, not per job)
    "unfinished": ("pc:{t}:unfinished", ("t",)),
    # per-client completion notices, pushed by the job store when jobs finish
    "notices": ("pc:{t}:n:{cid}", ("t", "cid")),
    # a client waiting for many jobs: how many more notices it needs before it wants
    # waking (a count with a TTL), and the notices held back meanwhile
    "notice_hold": ("pc:{t}:nh:{cid}", ("t", "cid")),
    "held_notices": ("pc:{t}:nq:{cid}", ("t", "cid")),
    # published chunks not yet finished: chunk key -> packed [queue, template, gen, time]
    "ledger": ("pc:ledger", ()),
    # the same chunks by publication time, so the reaper can look at old ones only
    "ledger_times": ("pc:ledger:t", ()),
    # running chunks: field `chunkkey|worker` -> lease expiry (a hash)
    "leases": ("pc:leases", ()),
    # chunks of a compute type whose queued jobs idle job processes may take (work
    # stealing): a sorted set of chunk keys by the time they were offered
    "stealable": ("pc:steal:{queue}", ("queue",)),
    # a token per published chunk of a compute type: wakes one idle pool process
    "wake": ("pc:wake:{queue}", ("queue",)),
    # pushed by a pool process to end its own outstanding pop on the wake-up lists
    "wake_cancel": ("pc:wake-cancel:{worker}", ("worker",)),
    # live workers: worker id -> JSON {queues, concurrency, seen}
    "workers": ("pc:workers", ()),
    # kill requests for one worker's pool children (list of packed requests)
    "kill_queue": ("pc:killq:{worker}", ("worker",)),
    # bumped whenever a job a worker process holds is taken from it (killed, recovered)
    "kill_generation": ("pc:killgen:{worker}", ("worker",)),
    "reaper_lock": ("pc:reaper", ()),
    # cluster-wide counters for metrics: finished jobs by status, runtime buckets, losses
    "stats": ("pc:stats", ()),
    # per API key and UTC day: jobs that ran to an outcome and their CPU seconds
    "usage": ("pc:{t}:usage", ("t",)),
    # crons: the record, its function (persistent), the tenant's index, fired markers
    "cron": ("pc:{t}:cron:{label}", ("t", "label")),
    "cron_function": ("pc:{t}:cronfn:{label}", ("t", "label")),
    "crons": ("pc:{t}:crons", ("t",)),
    # one-off markers (a cron's scheduled time served): SET NX with a TTL
    "once": ("pc:{t}:once:{marker}", ("t", "marker")),
    # REST endpoints: the record, its function (persistent), the tenant's index
    "rest": ("pc:{t}:rest:{label}", ("t", "label")),
    "rest_function": ("pc:{t}:restfn:{label}", ("t", "label")),
    "rests": ("pc:{t}:rests", ("t",)),
    # environments (`_env`): the spec record, an unused function slot, the tenant's index
    "env": ("pc:{t}:env:{label}", ("t", "label")),
    "env_function": ("pc:{t}:envfn:{label}", ("t", "label")),
    "envs": ("pc:{t}:envs", ("t",)),
    # tenants having records of a kind (cron, rest, env)
    "record_owners": ("pc:owners:{kind}", ("kind",)),
    # API keys: key -> JSON {secret (HMAC of the secret), active, created, note}
    "accounts": ("pc:accounts", ()),
    "account_seq": ("pc:accounts:seq", ()),
    # deactivated keys, checked by the submit and claim scripts
    "inactive_tenants": ("pc:accounts:inactive", ()),
    "orphan_suspects": ("pc:orphans", ()),
}

_FIELD = re.compile(r"\{(\w+)\}")


def _render(name: str, **values: object) -> str:
    template, _ = _TEMPLATES[name]
    return template.format(**values)


def jid_counter(t: str) -> str:
    """The tenant's jid sequence (INCRBY allocates jids)."""
    return _render("jid_counter", t=t)


def job(t: str, jid: int) -> str:
    """A job's record hash (status, times, attempts, small result)."""
    return _render("job", t=t, jid=jid)


def args(t: str, jid: int) -> str:
    """A job's sealed arguments when too big to pass through the submit script."""
    return _render("args", t=t, jid=jid)


def result(t: str, jid: int) -> str:
    """A job's sealed result when too big for its record hash."""
    return _render("result", t=t, jid=jid)


def stdout(t: str, jid: int) -> str:
    """A running or finished job's captured stdout (its tail)."""
    return _render("stdout", t=t, jid=jid)


def stderr(t: str, jid: int) -> str:
    """A running or finished job's captured stderr (its tail)."""
    return _render("stderr", t=t, jid=jid)


def profile(t: str, jid: int) -> str:
    """A job's profiler report (``_profile=True``)."""
    return _render("profile", t=t, jid=jid)


def function(t: str, sha: str) -> str:
    """A sealed function, by the SHA of its blob (shared by the tenant's jobs)."""
    return _render("function", t=t, sha=sha)


def options(t: str, oid: str) -> str:
    """A submission's JSON job spec, by its spec id."""
    return _render("options", t=t, oid=oid)


def dependents(t: str, jid: int) -> str:
    """Waiting chunks that depend on job `jid`."""
    return _render("dependents", t=t, jid=jid)


def waiting_chunk(t: str, chunk: str) -> str:
    """A chunk held back until its dependencies finish."""
    return _render("waiting_chunk", t=t, chunk=chunk)


def watchers(t: str, jid: int) -> str:
    """Clients other than the submitter waiting to hear that `jid` finished."""
    return _render("watchers", t=t, jid=jid)


def unfinished(t: str) -> str:
    """The tenant's chunks that may still hold unfinished jobs."""
    return _render("unfinished", t=t)


def notices(t: str, cid: str) -> str:
    """Completion notices for client `cid`."""
    return _render("notices", t=t, cid=cid)


def notice_hold(t: str, cid: str) -> str:
    """How many more notices client `cid` needs before it wants waking (absent: one)."""
    return _render("notice_hold", t=t, cid=cid)


def held_notices(t: str, cid: str) -> str:
    """Notices for client `cid` held back while its hold lasts."""
    return _render("held_notices", t=t, cid=cid)


def kill_queue(worker: str) -> str:
    """Kill requests for the processes warden `worker` supervises."""
    return _render("kill_queue", worker=worker)


def usage(t: str) -> str:
    """A tenant's usage by day (``<day>:jobs``, ``<day>:cpu``)."""
    return _render("usage", t=t)


def kill_generation(worker: str) -> str:
    """A counter bumped when a job `worker` holds is killed or recovered from it."""
    return _render("kill_generation", worker=worker)


def stealable(queue: str) -> str:
    """Chunks of compute type `queue` offered to idle job processes (work stealing)."""
    return _render("stealable", queue=queue)


def wake(queue: str) -> str:
    """Wake-up tokens for idle pool processes serving `queue` (`workers.pool`)."""
    return _render("wake", queue=queue)


def wake_cancel(worker: str) -> str:
    """Where pool process `worker` ends its own wait for wake-up tokens (`runner.wake_ups`)."""
    return _render("wake_cancel", worker=worker)


def cron(t: str, label: str) -> str:
    """A cron record's fields."""
    return _render("cron", t=t, label=label)


def cron_function(t: str, label: str) -> str:
    """A cron's sealed function."""
    return _render("cron_function", t=t, label=label)


def crons(t: str) -> str:
    """The set of the tenant's cron labels."""
    return _render("crons", t=t)


def once(t: str, marker: str) -> str:
    """A one-off marker (SET NX with a TTL), e.g. a cron firing already served."""
    return _render("once", t=t, marker=marker)


def record_owners(kind: str) -> str:
    """Tenants having records of `kind` (cron or rest)."""
    return _render("record_owners", kind=kind)


def rest(t: str, label: str) -> str:
    """A REST endpoint record's fields."""
    return _render("rest", t=t, label=label)


def rest_function(t: str, label: str) -> str:
    """A REST endpoint's sealed function."""
    return _render("rest_function", t=t, label=label)


def rests(t: str) -> str:
    """The set of the tenant's REST endpoint labels."""
    return _render("rests", t=t)


def env(t: str, label: str) -> str:
    """An environment's record (its requirements)."""
    return _render("env", t=t, label=label)


def env_function(t: str, label: str) -> str:
    """Unused (environments carry no function); kept so every record kind has one."""
    return _render("env_function", t=t, label=label)


def envs(t: str) -> str:
    """The set of the tenant's environment names."""
    return _render("envs", t=t)


BEAT_PREFIX = "pc:beat:"
"""RedBeat's key prefix (its entries and its lock live under it)."""
LEDGER = _render("ledger")
LEDGER_TIMES = _render("ledger_times")
LEASES = _render("leases")
WORKERS = _render("workers")
REAPER_LOCK = _render("reaper_lock")
STATS = _render("stats")
ACCOUNTS = _render("accounts")
ACCOUNT_SEQ = _render("account_seq")
INACTIVE_TENANTS = _render("inactive_tenants")
ORPHAN_SUSPECTS = _render("orphan_suspects")


def chunk_id(first: int, count: int) -> str:
    """A chunk is a contiguous jid range; its id is stable across redeliveries."""
    return f"{first}+{count}"


def job_prefix(t: str) -> str:
    """What every job record key of tenant `t` starts with (the jid follows)."""
    return _render("job", t=t, jid="")


def tenant_job_pattern(t: str) -> str:
    """SCAN pattern over a tenant's job records (used by listing, never on hot paths)."""
    return _render("job", t=t, jid="*")


def lua_prelude() -> str:
    """Lua functions `K.<name>(...)` that build the same keys as this module."""
    lines = ["local K = {}"]
    for name, (template, params) in _TEMPLATES.items():
        parts = []
        pos = 0
        for m in _FIELD.finditer(template):
            if m.start() > pos:
                parts.append(repr(template[pos : m.start()]))
            parts.append(f"tostring({m.group(1)})")
            pos = m.end()
        if pos < len(template):
            parts.append(repr(template[pos:]))
        body = " .. ".join(parts)
        lines.append(f"K['{name}'] = function({', '.join(params)}) return {body} end")
    return "\n".join(lines) + "\n"
