"""An isolated client: the `cloud` API through the gateway, holding only its API key.

PiCloud's client spoke HTTPS to PiCloud's servers with an API key and secret; an
isolated client does the same with the gateway (``server_url = https://...``). It holds
no Redis, S3 or cluster secret: the gateway checks the key on every call and answers
for that key only. What it gets back at connect is its tenant's signing key, with
which it seals what it sends and checks what it opens.
"""

from __future__ import annotations

from typing import Any

from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import CronBeat
from picloud_compat.errors import ConfigurationError, InvalidCredentials
from picloud_compat.files.base import FileStore
from picloud_compat.files.remote import RemoteFileStore
from picloud_compat.settings import Settings
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.client import RemoteStore
from picloud_compat.store.remote.http import SESSION_PATH, HttpTransport
from picloud_compat.tenancy import validate_tenant


def is_gateway_url(url: str | None) -> bool:
    """Whether `url` names a gateway (isolated mode) rather than Redis (team mode)."""
    return bool(url) and str(url).lower().startswith(("http://", "https://"))


class RemoteBeat:
    """Cron firing asked of the gateway, which holds beat's credentials."""

    def __init__(self, store: RemoteStore) -> None:
        self._store = store

    def save(self, tenant: str, label: str, expr: str, queue: str) -> None:
        """Start firing the cron."""
        self._store.call("cron_save", label, expr, queue)

    def delete(self, tenant: str, label: str) -> None:
        """Stop firing the cron."""
        self._store.call("cron_delete", label)


class RemoteMode:
    """The services of a client whose only door is a remote store."""

    name = "redis"  # PiCloud's connection_type for "a real cluster"

    def __init__(self, settings: Settings, store: RemoteStore) -> None:
        self.settings = settings
        self.store = store

    def files(self, tenant: str) -> FileStore:
        """Presigned transfers issued by the trusted side."""
        return RemoteFileStore(self.store)

    def beat(self) -> CronBeat:
        """Crons are fired by the cluster's beat, asked through the store's door."""
        return RemoteBeat(self.store)

    def gateway_url(self) -> str:
        """Published functions are served by the gateway itself."""
        return self.settings.gateway_url or str(self.settings.server_url)

    def describe(self, tenant: str) -> dict[str, Any]:
        """The gateway URL and API key."""
        return {"server_url": self.settings.server_url, "api_key": tenant, "isolated": True}

    def close(self) -> None:
        """Nothing to stop: the client closes its store."""


def remote_client(settings: Settings, *, notices: bool = True) -> Client:
    """A client of the gateway at ``settings.server_url`` acting as the configured key,
    after the gateway checked its secret (InvalidCredentials otherwise)."""
    if not settings.api_key or not settings.api_secretkey:
        raise ConfigurationError(
            "an isolated client needs api_key and api_secretkey: cloud.setkey(key, secret, "
            "server_url='https://gateway...')"
        )
    tenant = validate_tenant(str(settings.api_key))
    transport = HttpTransport(str(settings.server_url), tenant, settings.api_secretkey)
    try:
        session = wire.unpack(transport.post(SESSION_PATH, b""))
        if not isinstance(session, dict) or session.get("api_key") != tenant:
            raise InvalidCredentials()
        key = str(session["tenant_key"])
    except BaseException:
        transport.close()
        raise
    store = RemoteStore(transport)
    store.notice_holds = "notice_holds" in (session.get("features") or ())  # an older gateway
    scoped = settings.replace(signing_key=None, tenant_key=key)
    return Client(scoped, store, tenant, RemoteMode(scoped, store), notices=notices)
