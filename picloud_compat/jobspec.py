"""`JobSpec`: what every job of one submission shares, as stored and as run.

A spec is the validated reserved kwargs (`SubmitOptions`) plus the function's content
hash and display name. It is written once per submission (content-addressed, so a map
of 10,000 stores it once) and read back by the runner, `info`, listing and nested-job
helping: all through `JobSpec.from_json`, never as a raw dict. The Lua scripts read
two fields of it, named in `LUA_FIELDS` so their spelling is defined here only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from picloud_compat.errors import CloudException
from picloud_compat.options import SubmitOptions

LUA_FIELDS = {"fn": "fn", "restartable": "restartable", "env": "env"}
"""Spec fields the Lua scripts read (function to keep alive, restart on worker loss,
the environment that only its executors may run)."""


@dataclass(frozen=True)
class JobSpec(SubmitOptions):
    """The stored form of a submission's options; frozen and hashable."""

    fn: str = ""  # sha256 of the sealed function
    name: str = ""  # display name: module.qualname
    rest_label: str | None = None  # set for invocations of a published REST function
    rest_encoding: str | None = None  # 'json' | 'raw' for those

    @classmethod
    def of(cls, options: SubmitOptions, fn: str, name: str, **extra: Any) -> JobSpec:
        """The spec of submitting `options` with function `fn` (cached: most calls repeat)."""
        return _spec_of(options, fn, name, tuple(sorted(extra.items())))

    def options(self) -> SubmitOptions:
        """The reserved-kwargs part alone (what crons and REST endpoints store)."""
        return SubmitOptions(**{f.name: getattr(self, f.name) for f in fields(SubmitOptions)})

    @functools.cached_property
    def json(self) -> str:
        """The canonical JSON document (sorted keys, so equal specs share an id)."""
        data = asdict(self)
        data["os_env_vars"] = dict(self.os_env_vars)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def id(self) -> str:
        """Content id: equal specs are stored once."""
        return hashlib.sha256(self.json.encode()).hexdigest()[:20]

    @classmethod
    def from_json(cls, doc: str | bytes) -> JobSpec:
        """Parse a stored document; unknown fields (from newer clients) are ignored."""
        data = json.loads(doc)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["depends_on"] = tuple(values.get("depends_on", ()))
        values["vol"] = tuple(values.get("vol", ()))
        values["os_env_vars"] = tuple(sorted((values.get("os_env_vars") or {}).items()))
        return cls(**values)

    @classmethod
    def from_record(cls, record: dict[str, str]) -> JobSpec:
        """The spec a cron or REST record stores. Records saved before specs had a name
        of their own keep the same document under ``options``."""
        doc = record.get("spec") or record.get("options")
        if not doc:
            raise CloudException(
                f"the record {record.get('label')!r} has no job spec; register it again"
            )
        return cls.from_json(doc)


MISSING_SPEC = JobSpec()
"""What a job whose spec expired from the store runs with (it then fails clearly)."""


class SpecCache:
    """Specs by id, each read and parsed once: a map's million jobs share one spec.

    `read(tenant, spec_id)` fetches the stored document (None if gone: `MISSING_SPEC`).
    Bounded: past `limit` entries it starts over, which costs one read per spec."""

    def __init__(self, read: Callable[[str, str], str | None], limit: int = 1024) -> None:
        self._read = read
        self._limit = limit
        self._specs: dict[tuple[str, str], JobSpec] = {}

    def get(self, tenant: str, spec_id: object) -> JobSpec:
        """The spec `spec_id` of `tenant` (`MISSING_SPEC` for no id or a gone one)."""
        if not isinstance(spec_id, str) or not spec_id:
            return MISSING_SPEC
        key = (tenant, spec_id)
        found = self._specs.get(key)
        if found is None:
            raw = self._read(tenant, spec_id)
            found = JobSpec.from_json(raw) if raw else MISSING_SPEC
            if len(self._specs) >= self._limit:
                self._specs.clear()
            self._specs[key] = found
        return found


@functools.lru_cache(maxsize=512)
def _spec_of(
    options: SubmitOptions, fn: str, name: str, extra: tuple[tuple[str, Any], ...]
) -> JobSpec:
    values = {f.name: getattr(options, f.name) for f in fields(SubmitOptions)}
    return JobSpec(**values, fn=fn, name=name, **dict(extra))
