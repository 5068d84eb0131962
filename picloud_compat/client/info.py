"""`cloud.info`: a job's record, spec and output as a dict per jid."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from picloud_compat.errors import UnknownJobError
from picloud_compat.jobspec import MISSING_SPEC, SpecCache
from picloud_compat.store.contract import ClientStore
from picloud_compat.store.records import JobEntry

DEFAULT_INFO = ["stdout", "stderr", "status", "runtime"]
ALL_INFO = [
    "status",
    "stdout",
    "stderr",
    "runtime",
    "exception",
    "created",
    "finished",
    "label",
    "function",
    "type",
    "priority",
    "cores",
    "attempts",
    "worker",
    "profile",
    "depends_on",
    "env",
    "vol",
    "parent",
    "cputime.user",
    "cputime.system",
    "cpu_percentage",
    "memory.max_usage",
    "memory.failcnt",
]
UNMEASURED = (
    "memory",
    "memory.usage",
    "swap.usage",
    "swap.max_usage",
    "disk.usage",
    "ports",
)
"""PiCloud's other resource fields: accepted, and left out of the answer (as PiCloud's
simulator did) because nothing measures them per job yet. ``memory.max_usage`` (bytes)
and ``memory.failcnt`` are measured where jobs run in executors with memory cgroups
(``isolation = "tenant"``) and left out where they are not."""
MEASURED_WHERE_LIMITED = ("memory.max_usage", "memory.failcnt")
# info field -> JobSpec attribute
_FROM_SPEC = {
    "label": "label",
    "function": "name",
    "type": "type",
    "priority": "priority",
    "cores": "cores",
    "depends_on": "depends_on",
    "env": "env",
    "vol": "vol",
}
_RECORD = {
    "status",
    "exception",
    "attempts",
    "worker",
    "parent",
    "created",
    "finished",
    "cputime.user",
    "cputime.system",
    "memory.max_usage",
    "memory.failcnt",
}
_OUTPUT = {"stdout", "stderr", "profile"}


def info_fields(requested: Any) -> list[str]:
    """The fields asked for (PiCloud accepted a name, a list, or 'all'); names checked."""
    if requested is None:
        return list(DEFAULT_INFO)
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, list | tuple):
        raise TypeError(f"info_requested must be a string or a list of strings, got {requested!r}")
    fields: list[str] = []
    for f in requested:
        if not isinstance(f, str):
            raise TypeError(f"info_requested items must be strings, got {f!r}")
        fields.extend(ALL_INFO if f == "all" else [f])
    unknown = [f for f in fields if f not in ALL_INFO and f not in UNMEASURED]
    if unknown:
        raise ValueError(f"unknown info field(s) {unknown}; available: {', '.join(ALL_INFO)}")
    return [f for f in dict.fromkeys(fields) if f not in UNMEASURED]


def build_info(
    store: ClientStore, tenant: str, ids: list[int], fields: list[str]
) -> dict[int, dict[str, Any]]:
    """{jid: {field: value}} for the tenant's jobs; UnknownJobError for a missing one."""
    record_fields = [f for f in fields if f in _RECORD]
    if "runtime" in fields or "cpu_percentage" in fields:
        record_fields += ["runtime", "started", "finished"]
    if "cpu_percentage" in fields:
        record_fields += ["cputime.user", "cputime.system"]
    if any(f in _FROM_SPEC for f in fields):
        record_fields.append("spec")
    record_fields += [f for f in fields if f in _OUTPUT]
    entries = store.info(tenant, ids, list(dict.fromkeys(record_fields)))
    specs = SpecCache(store.spec)
    out: dict[int, dict[str, Any]] = {}
    for jid, entry in zip(ids, entries, strict=True):
        if entry is None:
            raise UnknownJobError(jid)
        item: dict[str, Any] = {}
        for f in fields:
            if f in _FROM_SPEC:
                spec = specs.get(tenant, entry.get("spec"))
                value = None if spec is MISSING_SPEC else getattr(spec, _FROM_SPEC[f])
                item[f] = list(value) if isinstance(value, tuple) else value
            elif f == "runtime":
                item[f] = job_runtime(entry)
            elif f == "cpu_percentage":
                item[f] = _cpu_percentage(entry)
            elif f in ("created", "finished"):
                item[f] = _datetime(entry.get(f))
            elif f in _OUTPUT:
                text = entry.get(f)
                item[f] = text if text is not None or f == "profile" else ""
            elif f in MEASURED_WHERE_LIMITED:
                if entry.get(f) is not None:
                    item[f] = entry.get(f)
            else:
                item[f] = entry.get(f)
        out[jid] = item
    return out


def job_runtime(entry: JobEntry) -> float | None:
    """Seconds the job ran, or has been running; None before it starts (needs the
    ``runtime``, ``started`` and ``status`` fields)."""
    runtime, started = entry.get("runtime"), entry.get("started")
    if isinstance(runtime, int | float | str):
        return float(runtime)
    if entry.get("status") == "processing" and isinstance(started, int | float | str):
        return max(0.0, time.time() - float(started))
    return None


def _cpu_percentage(entry: JobEntry) -> float | None:
    """CPU seconds over wall seconds, in percent (over 100 for a job using several cores)."""
    runtime, user = entry.get("runtime"), entry.get("cputime.user")
    system = entry.get("cputime.system")
    number = int | float
    if isinstance(runtime, number) and isinstance(user, number) and isinstance(system, number):
        return 100.0 * (user + system) / runtime if runtime > 0 else None
    return None


def _datetime(value: object) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(float(value)) if isinstance(value, int | float) else None
