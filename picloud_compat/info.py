"""`cloud.info`: a job's record, options and output as a dict per jid."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any

from picloud_compat.errors import UnknownJobError

if TYPE_CHECKING:
    from picloud_compat.client import Client

_FROM_OPTIONS = {
    "label": "label",
    "function": "name",
    "type": "type",
    "priority": "priority",
    "cores": "cores",
    "depends_on": "depends_on",
    "env": "env",
    "vol": "vol",
}
_RECORD = {"status", "exception", "attempts", "worker", "parent", "created", "finished"}
_OUTPUT = {"stdout", "stderr", "profile"}


def build_info(client: Client, ids: list[int], fields: list[str]) -> dict[int, dict[str, Any]]:
    record_fields = [f for f in fields if f in _RECORD]
    needs_runtime = "runtime" in fields
    if needs_runtime:
        record_fields += ["runtime", "started", "finished"]
    if any(f in _FROM_OPTIONS for f in fields):
        record_fields.append("options")
    record_fields += [f for f in fields if f in _OUTPUT]
    entries = client.store.info(client.tenant, ids, list(dict.fromkeys(record_fields)))
    options_cache: dict[str, dict[str, Any]] = {}
    out: dict[int, dict[str, Any]] = {}
    for jid, entry in zip(ids, entries, strict=True):
        if entry is None:
            raise UnknownJobError(jid)
        item: dict[str, Any] = {}
        for f in fields:
            if f in _FROM_OPTIONS:
                item[f] = _options(client, entry.get("options"), options_cache).get(
                    _FROM_OPTIONS[f]
                )
            elif f == "runtime":
                item[f] = _runtime(entry)
            elif f in ("created", "finished"):
                item[f] = _datetime(entry.get(f))
            elif f in _OUTPUT:
                text = entry.get(f)
                item[f] = text if text is not None or f == "profile" else ""
            else:
                item[f] = entry.get(f)
        out[jid] = item
    return out


def _runtime(entry: dict[str, Any]) -> float | None:
    if entry.get("runtime") is not None:
        return float(entry["runtime"])
    if entry.get("status") == "processing" and entry.get("started"):
        return max(0.0, time.time() - float(entry["started"]))
    return None


def _datetime(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value)


def _options(client: Client, oid: str | None, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not oid:
        return {}
    if oid not in cache:
        raw = client.store.options(client.tenant, oid)
        cache[oid] = json.loads(raw) if raw else {}
    return cache[oid]
