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

from anyio import CapacityLimiter, to_thread

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
SMALL_BODY = 4 * 1024 * 1024
"""Largest body of every other call (statuses, waits, records...)."""
BIG_CALLS = frozenset({"submit", "save_record"})
"""Calls that carry arguments or functions."""
THREADS_PER_KEY = 8
"""Blocking calls of one API key served at once (long polls included)."""

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
        self._limiters: dict[str, CapacityLimiter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/v1/"):
            await self._fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _reply(send, 405, b"POST only")
            return
        headers = dict(scope["headers"])
        # Who asks is settled before a byte of the body is read: an unauthenticated
        # caller cannot make the gateway hold hundreds of megabytes.
        authorization = headers.get(b"authorization")
        tenant = self._cached(authorization)
        if tenant is None:
            tenant = await to_thread.run_sync(self._authenticate, authorization)
        if tenant is None:
            await _reply(send, 401, b"invalid API key or secret", auth=True)
            return
        length = headers.get(b"content-length", b"")
        if not length.isdigit():
            await _reply(send, 411, b"calls need a Content-Length")
            return
        method = path[len(RPC_PATH) :] if path.startswith(RPC_PATH) else ""
        limit = RPC_MAX_BODY if method in BIG_CALLS else SMALL_BODY
        if int(length) > limit:
            await _reply(send, 413, f"{method or path} bodies are limited to {limit}".encode())
            return
        body = await _body(receive, int(length))
        if body is None:
            await _reply(send, 400, b"the body is not the length announced")
            return
        status, reply = await to_thread.run_sync(
            self._handle, path, tenant, body, limiter=self._limiter(tenant)
        )
        await _reply(send, status, reply)

    def _limiter(self, tenant: str) -> CapacityLimiter:
        """Each key's own share of threads: one tenant's long polls cannot starve others."""
        with self._lock:
            limiter = self._limiters.get(tenant)
            if limiter is None:
                limiter = self._limiters[tenant] = CapacityLimiter(THREADS_PER_KEY)
            return limiter

    def _handle(self, path: str, tenant: str, body: bytes) -> tuple[int, bytes]:
        """One call of an authenticated key, on a worker thread (the store blocks)."""
        if path == SESSION_PATH:
            key = tenant_key(self._secret, tenant).hex()
            # what this gateway understands beyond the first protocol: a newer client
            # sends only what its gateway announces
            features = ["notice_holds"]
            return 200, wire.pack({"api_key": tenant, "tenant_key": key, "features": features})
        if path.startswith(RPC_PATH):
            return 200, answer(self._scope_for(tenant).call, body)
        return 404, b"no such call"

    def _credentials(self, header: bytes | None) -> tuple[str, str] | None:
        if not header or not header.startswith(b"Basic ") or len(header) > 1024:
            return None
        try:
            api_key, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return api_key, secret

    def _cached(self, header: bytes | None) -> str | None:
        """The key, if these credentials were checked within the last second: a client
        makes hundreds of calls a second, and a deactivation still holds within one."""
        credentials = self._credentials(header)
        if credentials is None:
            return None
        api_key, secret = credentials
        seen = (api_key, hashlib.sha256(secret.encode()).hexdigest())
        if time.monotonic() - self._recent.get(seen, -AUTH_CACHE_SECONDS) < AUTH_CACHE_SECONDS:
            return api_key
        return None

    def _authenticate(self, header: bytes | None) -> str | None:
        credentials = self._credentials(header)
        if credentials is None:
            return None
        api_key, secret = credentials
        seen = (api_key, hashlib.sha256(secret.encode()).hexdigest())
        now = time.monotonic()
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


async def _body(receive: Receive, length: int) -> bytes | None:
    """The body, None if it runs past (or stops short of) the announced length."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        part = message.get("body", b"")
        size += len(part)
        if size > length:
            return None
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts) if size == length else None


async def _reply(send: Send, status: int, body: bytes, auth: bool = False) -> None:
    kind = CONTENT_TYPE if status == 200 else "text/plain"
    headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
    if auth:
        headers.append((b"www-authenticate", b'Basic realm="picloud"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
