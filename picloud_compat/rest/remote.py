"""``/v1``: the `cloud` client's own protocol, for tenants who get no Redis credentials.

An isolated client authenticates with its API key and secret, as PiCloud's client
did, and nothing else. ``POST /v1/session`` checks them and hands back the tenant's
signing key (derived here from the cluster's secret, so blobs the client seals verify
on workers and blobs it opens were sealed for this tenant only). Every store operation
is then ``POST /v1/rpc/<method>`` with a msgpack body, answered by a `TenantScope`
pinned to the authenticated tenant: whatever the body names, it reaches only that
tenant's jobs, results, files, crons and endpoints, and never key administration.

It is every isolated job's hot path, so it is a plain ASGI app in front of the FastAPI
one (FastAPI's middleware stack cost 2 ms of CPU per call; this costs a tenth of that).
Replies: 200 with the msgpack answer (store errors travel inside it), 401 for any
authentication failure, 404 for other paths, 411/413 for missing or oversized bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from anyio import to_thread

from picloud_compat.client.mode import CronBeat
from picloud_compat.errors import InvalidCredentials
from picloud_compat.settings import Settings
from picloud_compat.signing import tenant_key
from picloud_compat.store.contract import JobProcessStore
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.http import CONTENT_TYPE, RPC_PATH, SESSION_PATH
from picloud_compat.store.remote.scope import TenantScope, answer
from picloud_compat.tenant_services import TenantServices

RPC_MAX_BODY = 600 * 1024 * 1024
"""Largest call body: one chunk of a map, whose arguments are each at most
`max_transmit_data` (the store refuses what it cannot hold)."""

AUTH_CACHE_SECONDS = 1.0
"""How long a checked key is trusted without another look at the store."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CheckKey = Callable[[str, str], None]
"""(api_key, secret) -> None, or InvalidCredentials."""


class ClientProtocol:
    """The ``/v1`` endpoints, in front of `fallback` (the gateway's FastAPI app)."""

    def __init__(
        self,
        settings: Settings,
        store: JobProcessStore,
        check_key: CheckKey,
        beat: CronBeat | None,
        fallback: ASGIApp,
    ) -> None:
        if not settings.signing_key:
            raise ValueError("the client protocol needs the cluster's signing key")
        self._secret = settings.signing_key
        self._settings = settings
        self._store = store
        self._check_key = check_key
        self._beat = beat
        self._fallback = fallback
        self._scopes: dict[str, TenantScope] = {}
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], float] = {}  # (key, secret digest) -> checked at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/"):
            await self._fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _reply(send, 405, b"POST only")
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if not length.isdigit():
            await _reply(send, 411, b"calls need a Content-Length")
            return
        if int(length) > RPC_MAX_BODY:
            await _reply(send, 413, b"call body too large")
            return
        body = await _body(receive)
        status, reply = await to_thread.run_sync(
            self._handle, path, headers.get(b"authorization"), body
        )
        await _reply(send, status, reply, auth=status == 401)

    def _handle(self, path: str, authorization: bytes | None, body: bytes) -> tuple[int, bytes]:
        """One call, on a worker thread (checking the key and the store both block)."""
        tenant = self._authenticate(authorization)
        if tenant is None:
            return 401, b"invalid API key or secret"
        if path == SESSION_PATH:
            key = tenant_key(self._secret, tenant).hex()
            return 200, wire.pack({"api_key": tenant, "tenant_key": key})
        if path.startswith(RPC_PATH):
            return 200, answer(self._scope_for(tenant).call, body)
        return 404, b"no such call"

    def _authenticate(self, header: bytes | None) -> str | None:
        if not header or not header.startswith(b"Basic "):
            return None
        try:
            api_key, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # A key checked within the last second is not checked again: a client makes
        # hundreds of calls a second, and a deactivation still holds within a second.
        seen = (api_key, hashlib.sha256(secret.encode()).hexdigest())
        now = time.monotonic()
        if now - self._recent.get(seen, -AUTH_CACHE_SECONDS) < AUTH_CACHE_SECONDS:
            return api_key
        try:
            self._check_key(api_key, secret)
        except InvalidCredentials:
            return None
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[seen] = now
        return api_key

    def _scope_for(self, tenant: str) -> TenantScope:
        with self._lock:
            scope = self._scopes.get(tenant)
            if scope is None:
                services = TenantServices(self._settings, tenant, self._beat)
                scope = self._scopes[tenant] = TenantScope(self._store, tenant, services=services)
            return scope


async def _body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _reply(send: Send, status: int, body: bytes, auth: bool = False) -> None:
    kind = CONTENT_TYPE if status == 200 else "text/plain"
    headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
    if auth:
        headers.append((b"www-authenticate", b'Basic realm="picloud"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
