"""Published REST endpoints: one record per (API key, label) in the store.

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
from typing import Any

from picloud_compat import options as opts
from picloud_compat.client.jobs import Client
from picloud_compat.client.submitting import display_name
from picloud_compat.errors import CloudException
from picloud_compat.jobspec import JobSpec

LABEL = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")
ENCODINGS = ("json", "raw")
_IGNORED = ("_label", "_depends_on", "_depends_on_errors", "_callback", "_callback_on_error")


class EndpointNotFound(CloudException):
    """No function of this API key is published under that label."""

    def __init__(self, label: str) -> None:
        super().__init__(f"no published function {label!r}", status=404)


def validate_label(label: object) -> str:
    """A REST label (1-100 URL-safe characters); ValueError naming it otherwise."""
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
    """One tenant's published functions."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tenant = client.tenant
        self.store = client.store

    def url(self, label: str) -> str:
        """Where the function is invoked (may start the simulator's local gateway)."""
        return f"{self.client.mode.gateway_url().rstrip('/')}/r/{label}"

    def publish(
        self, func: Callable[..., Any], label: str, out_encoding: str = "json", **reserved: Any
    ) -> str:
        """Publish `func` under `label` (replacing any previous one); returns its URL."""
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
        spec = JobSpec.of(
            options, sha, display_name(func), rest_label=label, rest_encoding=out_encoding
        )
        record = {
            "fn": sha,
            "func_name": spec.name,
            "spec": spec.json,
            "argspec": json.dumps(argspec(func)),
            "description": inspect.getdoc(func) or "",
            "out_encoding": out_encoding,
            "created": repr(time.time()),
        }
        url = self.url(label)  # refused before anything is saved where it cannot be served
        self.store.save_record(self.tenant, "rest", label, record, blob, replace=True)
        return url

    def remove(self, label: str) -> None:
        """Unpublish; EndpointNotFound if nothing is published under `label`."""
        if not self.store.delete_record(self.tenant, "rest", validate_label(label)):
            raise EndpointNotFound(label)

    def list(self) -> list[str]:
        """Labels of this API key's published functions."""
        return self.store.record_labels(self.tenant, "rest")

    def record(self, label: str) -> dict[str, Any]:
        """The stored record, with its argument spec parsed."""
        found = self.store.record(self.tenant, "rest", validate_label(label))
        if found is None:
            raise EndpointNotFound(label)
        record: dict[str, Any] = dict(found)
        record["argspec"] = json.loads(record["argspec"])
        return record

    def info(self, label: str) -> dict[str, Any]:
        """{label, uri, signature, output_encoding, description}."""
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
        """Create a job calling the function with `kwargs`; its jid."""
        return self.invoke_map(label, [kwargs])[0]

    def invoke_map(self, label: str, rows: list[dict[str, Any]]) -> list[int]:
        """One job per row of keyword arguments (all checked before any is created)."""
        record = self.record(label)
        for row in rows:
            check_arguments(record["argspec"], row)
        blob = self.store.record_function(self.tenant, "rest", label)
        if blob is None:
            raise EndpointNotFound(label)
        spec = dataclasses.replace(
            JobSpec.from_record(record), rest_label=label, rest_encoding=record["out_encoding"]
        )
        return [self.client.submit_stored(spec, blob, (), row) for row in rows]
