"""Published REST endpoints: one record per (API key, label) in Redis.

Publishing stores the function (persistently), its reserved kwargs, its argument spec
(so the gateway can refuse bad invocations before creating a job), its docstring and
the output encoding. Every invocation is an ordinary job.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from picloud_compat import keys
from picloud_compat import options as opts
from picloud_compat.errors import CloudException, store_errors

if TYPE_CHECKING:
    from picloud_compat.client import Client

LABEL = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")
ENCODINGS = ("json", "raw")
_IGNORED = ("_label", "_depends_on", "_depends_on_errors", "_callback", "_callback_on_error")


class EndpointNotFound(CloudException):
    def __init__(self, label: str) -> None:
        super().__init__(f"no published function {label!r}", status=404)


def validate_label(label: object) -> str:
    if not isinstance(label, str) or not LABEL.match(label):
        raise ValueError(
            f"REST label must be 1-100 characters of letters, digits, '_', '.', '+', '-'; "
            f"got {label!r}"
        )
    return label


def argspec(func: Callable[..., Any]) -> dict[str, Any]:
    """What the gateway needs to check an invocation: names, which are required, **kwargs."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {"params": [], "required": [], "varargs": True, "varkw": True}
    params = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return {
        "params": [p.name for p in params],
        "required": [p.name for p in params if p.default is p.empty],
        "varargs": any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()),
        "varkw": any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()),
    }


def check_arguments(spec: dict[str, Any], given: dict[str, Any]) -> None:
    """Raise ValueError for missing or unexpected keyword arguments."""
    missing = [name for name in spec["required"] if name not in given]
    if missing:
        raise ValueError(f"missing required argument(s): {', '.join(missing)}")
    if not spec["varkw"]:
        unknown = sorted(set(given) - set(spec["params"]))
        if unknown:
            raise ValueError(f"unexpected argument(s): {', '.join(unknown)}")


class RestRegistry:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.tenant = client.tenant
        self.redis = client.store.redis  # type: ignore[attr-defined]

    def url(self, label: str) -> str:
        return f"{self.client.settings.gateway_url.rstrip('/')}/r/{label}"

    def publish(
        self, func: Callable[..., Any], label: str, out_encoding: str = "json", **reserved: Any
    ) -> str:
        if not callable(func):
            raise TypeError(f"{func!r} is not callable")
        label = validate_label(label)
        if out_encoding not in ENCODINGS:
            raise ValueError(f"out_encoding must be 'json' or 'raw', got {out_encoding!r}")
        for key in _IGNORED:
            reserved.pop(key, None)
        options, _ = opts.parse(reserved)
        options = dataclasses.replace(options, label=f"rest:{label}")
        sha, blob = self.client.codec.function(func)
        from picloud_compat.client import _display_name

        name = _display_name(func)
        record = {
            "label": label,
            "fn": sha,
            "func_name": name,
            "options": options.to_json(fn=sha, name=name),
            "argspec": json.dumps(argspec(func)),
            "description": inspect.getdoc(func) or "",
            "out_encoding": out_encoding,
            "created": time.time(),
        }
        with store_errors("publishing a function"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(keys.rest(self.tenant, label))  # re-publishing replaces
            pipe.hset(keys.rest(self.tenant, label), mapping=record)
            pipe.set(keys.rest_function(self.tenant, label), blob)
            pipe.sadd(keys.rests(self.tenant), label)
            pipe.execute()
        return self.url(label)

    def remove(self, label: str) -> None:
        label = validate_label(label)
        with store_errors("removing a function"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(keys.rest(self.tenant, label), keys.rest_function(self.tenant, label))
            pipe.srem(keys.rests(self.tenant), label)
            removed = pipe.execute()[0]
        if not removed:
            raise EndpointNotFound(label)

    def list(self) -> list[str]:
        with store_errors("listing functions"):
            return sorted(x.decode() for x in self.redis.smembers(keys.rests(self.tenant)))

    def record(self, label: str) -> dict[str, Any]:
        label = validate_label(label)
        with store_errors("reading a function"):
            raw = self.redis.hgetall(keys.rest(self.tenant, label))
        if not raw:
            raise EndpointNotFound(label)
        record: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        record["argspec"] = json.loads(record["argspec"])
        return record

    def info(self, label: str) -> dict[str, Any]:
        record = self.record(label)
        spec = record["argspec"]
        return {
            "label": label,
            "uri": self.url(label),
            "signature": {
                "params": spec["params"],
                "required": spec["required"],
                "accepts_any": spec["varkw"],
            },
            "output_encoding": record["out_encoding"],
            "description": record["description"],
        }

    def invoke(self, label: str, kwargs: dict[str, Any]) -> int:
        return self.invoke_map(label, [kwargs])[0]

    def invoke_map(self, label: str, rows: list[dict[str, Any]]) -> list[int]:
        record = self.record(label)
        for row in rows:
            check_arguments(record["argspec"], row)
        with store_errors("reading a function"):
            blob = self.redis.get(keys.rest_function(self.tenant, label))
        if blob is None:
            raise EndpointNotFound(label)
        options = opts.SubmitOptions(**opts.from_json(record["options"]))
        extra = (("rest_encoding", record["out_encoding"]), ("rest_label", label))
        return [
            self.client.submit_stored(
                record["fn"], blob, record["func_name"], options, (), row, extra
            )
            for row in rows
        ]
