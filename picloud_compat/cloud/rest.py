"""``cloud.rest``: publish functions as HTTP endpoints (served by ``picloud gateway``).

``POST <gateway>/r/<label>`` with the function's keyword arguments (JSON) creates a job,
authenticated with HTTP Basic (API key, secret).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from picloud_compat.client import get_client
from picloud_compat.errors import CloudException

__all__ = ["deregister", "info", "list", "publish", "register", "remove"]


def _registry() -> Any:
    client = get_client()
    if client.connection_type != "redis":
        raise CloudException(
            "cloud.rest needs a cluster and its gateway; not available in the simulator"
        )
    from picloud_compat.rest.registry import RestRegistry

    return RestRegistry(client)


def publish(
    func: Callable[..., Any], label: str, out_encoding: str = "json", **reserved_kwargs: Any
) -> str:
    """Publish `func` as `label`; returns its URL. out_encoding: 'json' or 'raw'."""
    return _registry().publish(func, label, out_encoding, **reserved_kwargs)


register = publish


def remove(label: str) -> None:
    _registry().remove(label)


deregister = remove


def list() -> list[str]:
    return _registry().list()


def info(label: str) -> dict[str, Any]:
    """{label, uri, signature, output_encoding, description}."""
    return _registry().info(label)
