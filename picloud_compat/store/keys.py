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
    # published chunks not yet finished: chunk key -> packed [queue, template, gen, time]
    "ledger": ("pc:ledger", ()),
    # the same chunks by publication time, so the reaper can look at old ones only
    "ledger_times": ("pc:ledger:t", ()),
    # running chunks: member `chunkkey|worker`, score = lease expiry
    "leases": ("pc:leases", ()),
    # live workers: worker id -> JSON {queues, concurrency, seen}
    "workers": ("pc:workers", ()),
    # kill requests for one worker's pool children (list of packed requests)
    "kill_queue": ("pc:killq:{worker}", ("worker",)),
    "reaper_lock": ("pc:reaper", ()),
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
    # tenants having records of a kind (cron, rest)
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
    return _render("jid_counter", t=t)


def job(t: str, jid: int) -> str:
    return _render("job", t=t, jid=jid)


def args(t: str, jid: int) -> str:
    return _render("args", t=t, jid=jid)


def result(t: str, jid: int) -> str:
    return _render("result", t=t, jid=jid)


def stdout(t: str, jid: int) -> str:
    return _render("stdout", t=t, jid=jid)


def stderr(t: str, jid: int) -> str:
    return _render("stderr", t=t, jid=jid)


def profile(t: str, jid: int) -> str:
    return _render("profile", t=t, jid=jid)


def function(t: str, sha: str) -> str:
    return _render("function", t=t, sha=sha)


def options(t: str, oid: str) -> str:
    return _render("options", t=t, oid=oid)


def dependents(t: str, jid: int) -> str:
    return _render("dependents", t=t, jid=jid)


def waiting_chunk(t: str, chunk: str) -> str:
    return _render("waiting_chunk", t=t, chunk=chunk)


def watchers(t: str, jid: int) -> str:
    return _render("watchers", t=t, jid=jid)


def unfinished(t: str) -> str:
    return _render("unfinished", t=t)


def notices(t: str, cid: str) -> str:
    return _render("notices", t=t, cid=cid)


def kill_queue(worker: str) -> str:
    return _render("kill_queue", worker=worker)


def cron(t: str, label: str) -> str:
    return _render("cron", t=t, label=label)


def cron_function(t: str, label: str) -> str:
    return _render("cron_function", t=t, label=label)


def crons(t: str) -> str:
    return _render("crons", t=t)


def once(t: str, marker: str) -> str:
    return _render("once", t=t, marker=marker)


def record_owners(kind: str) -> str:
    return _render("record_owners", kind=kind)


def rest(t: str, label: str) -> str:
    return _render("rest", t=t, label=label)


def rest_function(t: str, label: str) -> str:
    return _render("rest_function", t=t, label=label)


def rests(t: str) -> str:
    return _render("rests", t=t)


BEAT_PREFIX = "pc:beat:"
"""RedBeat's key prefix (its entries and its lock live under it)."""
LEDGER = _render("ledger")
LEDGER_TIMES = _render("ledger_times")
LEASES = _render("leases")
WORKERS = _render("workers")
REAPER_LOCK = _render("reaper_lock")
ACCOUNTS = _render("accounts")
ACCOUNT_SEQ = _render("account_seq")
INACTIVE_TENANTS = _render("inactive_tenants")
ORPHAN_SUSPECTS = _render("orphan_suspects")


def chunk_id(first: int, count: int) -> str:
    """A chunk is a contiguous jid range; its id is stable across redeliveries."""
    return f"{first}+{count}"


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
