"""``cloud.account``: manage API keys (each key is a tenant with its own jobs and files).

Authenticated with the admin credentials from the settings: username ``admin`` and
``admin_password`` (``PICLOUD_ADMIN_PASSWORD``). Secrets are shown once and stored hashed.
On the simulator, keys live in the simulator's store for the life of the script.
"""

from __future__ import annotations

from typing import Any

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client.session import admin_store

__all__ = ["activate_key", "create_key", "deactivate_key", "get_key", "list_keys"]


def _registry(username: str, password: str) -> AccountRegistry:
    store, settings = admin_store()
    registry = AccountRegistry(store, settings)
    registry.check_admin(username, password)
    return registry


def create_key(username: str, password: str, note: str = "") -> dict[str, Any]:
    """A new active key: {'api_key': ..., 'api_secretkey': ...} (the secret is shown once)."""
    api_key, secret = _registry(username, password).create_key(note)
    return {"api_key": api_key, "api_secretkey": secret, "active": True}


def list_keys(username: str, password: str, active_only: bool = False) -> list[str]:
    """Every key (or only active ones)."""
    return [k.api_key for k in _registry(username, password).list_keys(active_only)]


def get_key(username: str, password: str, api_key: Any) -> dict[str, Any]:
    """{api_key, active, created, note} of one key."""
    return _registry(username, password).get_key(str(api_key)).as_dict()


def activate_key(username: str, password: str, api_key: Any) -> None:
    """Accept the key again everywhere."""
    _registry(username, password).set_active(str(api_key), True)


def deactivate_key(username: str, password: str, api_key: Any) -> None:
    """Refuse the key everywhere: setkey, the gateway, new submissions and queued jobs."""
    _registry(username, password).set_active(str(api_key), False)
