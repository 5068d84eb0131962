"""Registered crons: one record per (API key, label) in the store, plus a firing entry.

A firing submits the stored function as an ordinary job (with a jid, status, output)
at most once per scheduled time, even if two beats fire it (`RecordStore.claim_once`
on the scheduled time). What fires it is the client's `CronBeat`: RedBeat entries read
by ``picloud beat`` on a cluster, the simulator's clock (`cron.clock`) otherwise.
"""

from __future__ import annotations

import dataclasses
import inspect
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from picloud_compat import options as opts
from picloud_compat.client.jobs import Client
from picloud_compat.client.submitting import display_name
from picloud_compat.cron.expressions import normalize, previous_fire
from picloud_compat.errors import CloudException, UnknownJobError
from picloud_compat.jobspec import JobSpec

LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
# PiCloud ignored these for crons (a firing has no parents and is labelled by the cron).
_IGNORED = ("_label", "_depends_on", "_depends_on_errors", "_callback", "_callback_on_error")
FIRED_MARKER_TTL = 7 * 86400
"""How long a served scheduled time is remembered (a second beat must not re-serve it)."""


class CronNotFound(CloudException):
    """No cron of this API key has that label."""

    def __init__(self, label: str) -> None:
        super().__init__(f"no cron named {label!r}", status=404)


def validate_label(label: object) -> str:
    """A cron label: 1-100 of letters, digits, '_', '-', '.'; TypeError/ValueError else."""
    if not isinstance(label, str) or not label:
        raise TypeError(f"cron label must be a non-empty string, got {label!r}")
    if len(label) > 100 or not set(label) <= LABEL_CHARS:
        raise ValueError(f"cron label {label!r} may only use letters, digits, '_', '-' and '.'")
    return label


class CronRegistry:
    """One tenant's crons."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tenant = client.tenant
        self.store = client.store

    def register(
        self,
        func: Callable[..., Any],
        label: str,
        schedule: str | Sequence[object],
        **reserved: Any,
    ) -> str:
        """Fire ``func()`` on `schedule` as cron `label`; ValueError if it exists."""
        if not callable(func):
            raise TypeError(f"cron function {func!r} is not callable")
        label = validate_label(label)
        expr = normalize(schedule)
        _check_no_required_arguments(func)
        for key in _IGNORED:
            reserved.pop(key, None)
        options, _ = opts.parse(reserved)
        options = dataclasses.replace(options, label=f"cron:{label}")
        sha, blob = self.client.codec.function(func)
        spec = JobSpec.of(options, sha, display_name(func))
        record = {
            "schedule": expr,
            "fn": sha,
            "func_name": spec.name,
            "spec": spec.json,
            "created": repr(time.time()),
            "creator_host": socket.gethostname(),
        }
        if not self.store.save_record(self.tenant, "cron", label, record, blob, replace=False):
            raise ValueError(f"a cron named {label!r} already exists; deregister it first")
        self.client.mode.beat().save(self.tenant, label, expr, options.type)
        return label

    def deregister(self, label: str) -> None:
        """Stop and remove a cron; CronNotFound if there is none."""
        label = validate_label(label)
        if self.store.record(self.tenant, "cron", label) is None:
            raise CronNotFound(label)
        self.client.mode.beat().delete(self.tenant, label)
        self.store.delete_record(self.tenant, "cron", label)

    def list(self) -> list[str]:
        """Labels of this API key's crons."""
        return self.store.record_labels(self.tenant, "cron")

    def info(self, label: str) -> dict[str, Any]:
        """{label, schedule, last_run, last_jid, created, creator_host, func_name}."""
        record = self._record(validate_label(label))
        last_run = record.get("last_run")
        return {
            "label": label,
            "schedule": record["schedule"],
            "last_run": None if not last_run else datetime.fromtimestamp(float(last_run), UTC),
            "last_jid": int(record["last_jid"]) if record.get("last_jid") else None,
            "created": datetime.fromtimestamp(float(record["created"]), UTC),
            "creator_host": record["creator_host"],
            "func_name": record["func_name"],
        }

    def _record(self, label: str) -> dict[str, str]:
        record = self.store.record(self.tenant, "cron", label)
        if record is None:
            raise CronNotFound(label)
        return record

    def run(self, label: str, fire_time: datetime | None = None) -> int | None:
        """Submit one firing now; with `fire_time`, at most once per scheduled time."""
        record = self._record(validate_label(label))
        if fire_time is not None:
            marker = f"cron:{label}:{int(fire_time.timestamp())}"
            if not self.store.claim_once(self.tenant, marker, FIRED_MARKER_TTL):
                return None  # another beat already served this scheduled time
        blob = self.store.record_function(self.tenant, "cron", label)
        if blob is None:
            raise UnknownJobError(label)
        jid = self.client.submit_stored(JobSpec.from_record(record), blob)
        self.store.update_record(
            self.tenant, "cron", label, {"last_run": repr(time.time()), "last_jid": str(jid)}
        )
        return jid

    def fire(self, label: str, now: datetime | None = None) -> int | None:
        """Serve the scheduled firing that is due at `now` (default: now)."""
        expr = self._record(validate_label(label))["schedule"]
        return self.run(label, previous_fire(expr, now or datetime.now(UTC)))


def _check_no_required_arguments(func: Callable[..., Any]) -> None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    required = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise ValueError(
            f"a cron function must take no required arguments; {display_name(func)} needs "
            f"{required}"
        )
