"""Registered crons: one record per (API key, label) in Redis, plus a RedBeat entry.

A firing is the task ``picloud.cron_fire(tenant, label)`` on the job's compute-type
queue; it submits the stored function as an ordinary job (with a jid, status, output)
at most once per scheduled time, even if two beats fire it (a SET NX on the fire time).
"""

from __future__ import annotations

import inspect
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from picloud_compat import keys
from picloud_compat import options as opts
from picloud_compat.cron.schedule import CronSchedule, install, normalize, previous_fire
from picloud_compat.errors import CloudException, UnknownJobError, store_errors

if TYPE_CHECKING:
    from picloud_compat.client import Client

FIRE_TASK = "picloud.cron_fire"
LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
# PiCloud ignored these for crons (a firing has no parents and is labelled by the cron).
_IGNORED = ("_label", "_depends_on", "_depends_on_errors", "_callback", "_callback_on_error")


class CronNotFound(CloudException):
    def __init__(self, label: str) -> None:
        super().__init__(f"no cron named {label!r}", status=404)


def validate_label(label: object) -> str:
    if not isinstance(label, str) or not label:
        raise TypeError(f"cron label must be a non-empty string, got {label!r}")
    if len(label) > 100 or not set(label) <= LABEL_CHARS:
        raise ValueError(f"cron label {label!r} may only use letters, digits, '_', '-' and '.'")
    return label


def beat_entry_name(tenant: str, label: str) -> str:
    return f"{tenant}:{label}"


def beat_app(settings: Any) -> Any:
    """A Celery app configured just enough to save and delete RedBeat entries."""
    from celery import Celery

    from picloud_compat.cron.beat import beat_config

    install()
    app = Celery("picloud-cron-client", set_as_current=False)
    app.conf.update(beat_config(settings))
    return app


class CronRegistry:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.tenant = client.tenant
        self.redis = client.store.redis  # type: ignore[attr-defined]
        self._app: Any = None

    def _beat(self) -> Any:
        if self._app is None:
            self._app = beat_app(self.client.settings)
        return self._app

    def register(
        self,
        func: Callable[..., Any],
        label: str,
        schedule: str | Sequence[object],
        **reserved: Any,
    ) -> str:
        if not callable(func):
            raise TypeError(f"cron function {func!r} is not callable")
        label = validate_label(label)
        expr = normalize(schedule)
        _check_no_required_arguments(func)
        for key in _IGNORED:
            reserved.pop(key, None)
        options, _ = opts.parse(reserved)
        options = _with_label(options, f"cron:{label}")
        sha, blob = self.client.codec.function(func)
        name = _display(func)
        record = {
            "label": label,
            "schedule": expr,
            "fn": sha,
            "func_name": name,
            "options": options.to_json(fn=sha, name=name),
            "created": time.time(),
            "creator_host": socket.gethostname(),
        }
        key = keys.cron(self.tenant, label)
        with store_errors("registering a cron"):
            if not self.redis.hsetnx(key, "label", label):
                raise ValueError(f"a cron named {label!r} already exists; deregister it first")
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, mapping=record)
            pipe.set(keys.cron_function(self.tenant, label), blob)
            pipe.sadd(keys.crons(self.tenant), label)
            pipe.execute()
        self._save_entry(label, expr, options.type)
        return label

    def _save_entry(self, label: str, expr: str, queue: str) -> None:
        from redbeat.schedulers import RedBeatSchedulerEntry

        RedBeatSchedulerEntry(
            beat_entry_name(self.tenant, label),
            FIRE_TASK,
            CronSchedule(expr),
            args=[self.tenant, label],
            options={"queue": queue, "shadow": f"cron:{label}"},
            app=self._beat(),
        ).save()

    def deregister(self, label: str) -> None:
        from redbeat.schedulers import RedBeatSchedulerEntry

        label = validate_label(label)
        if not self.redis.exists(keys.cron(self.tenant, label)):
            raise CronNotFound(label)
        app = self._beat()
        prefix = app.conf.redbeat_key_prefix
        try:
            RedBeatSchedulerEntry.from_key(
                prefix + beat_entry_name(self.tenant, label), app=app
            ).delete()
        except KeyError:
            pass  # the beat entry was already gone
        with store_errors("removing a cron"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(keys.cron(self.tenant, label), keys.cron_function(self.tenant, label))
            pipe.srem(keys.crons(self.tenant), label)
            pipe.execute()

    def list(self) -> list[str]:
        with store_errors("listing crons"):
            return sorted(x.decode() for x in self.redis.smembers(keys.crons(self.tenant)))

    def info(self, label: str) -> dict[str, Any]:
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
        with store_errors("reading a cron"):
            raw = self.redis.hgetall(keys.cron(self.tenant, label))
        if not raw:
            raise CronNotFound(label)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def run(self, label: str, fire_time: datetime | None = None) -> int | None:
        """Submit one firing now; with `fire_time`, at most once per scheduled time."""
        record = self._record(validate_label(label))
        if fire_time is not None:
            stamp = int(fire_time.timestamp())
            claimed = self.redis.set(
                keys.cron_fired(self.tenant, label, stamp), 1, nx=True, ex=7 * 86400
            )
            if not claimed:
                return None  # another beat already served this scheduled time
        blob = self.redis.get(keys.cron_function(self.tenant, label))
        if blob is None:
            raise UnknownJobError(label)
        options = opts.SubmitOptions(**opts.from_json(record["options"]))
        jid = self.client.submit_stored(record["fn"], blob, record["func_name"], options)
        self.redis.hset(
            keys.cron(self.tenant, label), mapping={"last_run": time.time(), "last_jid": jid}
        )
        return jid

    def fire(self, label: str) -> int | None:
        """Serve the scheduled firing that is due now (called by beat's task)."""
        expr = self._record(validate_label(label))["schedule"]
        return self.run(label, previous_fire(expr, datetime.now(UTC)))


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
            f"a cron function must take no required arguments; {_display(func)} needs {required}"
        )


def _with_label(options: opts.SubmitOptions, label: str) -> opts.SubmitOptions:
    import dataclasses

    return dataclasses.replace(options, label=label)


def _display(func: Callable[..., Any]) -> str:
    from picloud_compat.client import _display_name

    return _display_name(func)
