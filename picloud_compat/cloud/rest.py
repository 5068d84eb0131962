"""``cloud.rest``: publish functions as HTTP endpoints.

On a cluster ``picloud gateway`` serves them; on the simulator a gateway on a loopback
port does, while the script runs (``publish`` returns its URL, ready for ``curl``).
``POST <gateway>/r/<label>`` with the function's keyword arguments (JSON) creates a job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from picloud_compat.client.session import get_client
from picloud_compat.rest.registry import RestRegistry

__all__ = ["deregister", "info", "list", "publish", "register", "remove"]


def _registry() -> RestRegistry:
    return RestRegistry(get_client())


def publish(
    func: Callable[..., Any], label: str, out_encoding: str = "json", **reserved_kwargs: Any
) -> str:
    """Publish `func` as `label`; returns its URL. out_encoding: 'json' or 'raw'."""
    return _registry().publish(func, label, out_encoding, **reserved_kwargs)


register = publish


def remove(label: str) -> None:
    """Unpublish `label`."""
    _registry().remove(label)


deregister = remove


def list() -> list[str]:
    """Labels of this API key's published functions."""
    return _registry().list()


def info(label: str) -> dict[str, Any]:
    """{label, uri, signature, output_encoding, description}."""
    return _registry().info(label)
