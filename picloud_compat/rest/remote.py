"""``/v1``: the `cloud` client's own protocol, for tenants who get no Redis credentials.

An isolated client authenticates with its API key and secret, as PiCloud's client
did, and nothing else. ``POST /v1/session`` checks them and hands back the tenant's
signing key (derived here from the cluster's secret, so blobs the client seals verify
on workers and blobs it opens were sealed for this tenant only). Every store operation
is then ``POST /v1/rpc/<method>``, answered by a `TenantScope` pinned to the
authenticated tenant: whatever the body names, it reaches only that tenant's jobs,
results, files, crons and endpoints, and never key administration.
"""

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool

from picloud_compat.client.mode import CronBeat
from picloud_compat.rest.http import ApiError
from picloud_compat.settings import Settings
from picloud_compat.signing import tenant_key
from picloud_compat.store.contract import JobProcessStore
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.http import CONTENT_TYPE
from picloud_compat.store.remote.scope import TenantScope, answer
from picloud_compat.tenant_services import TenantServices

RPC_MAX_BODY = 600 * 1024 * 1024
"""Largest call body: one chunk of a map, whose arguments are each at most
`max_transmit_data` (the store refuses what it cannot hold)."""


def remote_routes(
    app: FastAPI,
    settings: Settings,
    store: JobProcessStore,
    authenticate: Callable[[HTTPBasicCredentials | None], str],
    beat: CronBeat | None,
) -> None:
    """Mount ``/v1/session`` and ``/v1/rpc/{method}``."""
    if not settings.signing_key:
        raise ValueError("the client protocol needs the cluster's signing key")
    secret = settings.signing_key
    basic = HTTPBasic(auto_error=False)
    scopes: dict[str, TenantScope] = {}
    lock = threading.Lock()

    def tenant(credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]) -> str:
        return authenticate(credentials)

    def scope_for(name: str) -> TenantScope:
        with lock:
            scope = scopes.get(name)
            if scope is None:
                services = TenantServices(settings, name, beat)
                scope = scopes[name] = TenantScope(store, name, services=services)
            return scope

    @app.post("/v1/session", summary="Check a key and get its tenant signing key")
    def session(name: Annotated[str, Depends(tenant)]) -> Response:
        body = wire.pack({"api_key": name, "tenant_key": tenant_key(secret, name).hex()})
        return Response(body, media_type=CONTENT_TYPE)

    @app.post("/v1/rpc/{method}", summary="One store call of the cloud client (msgpack)")
    async def rpc(method: str, request: Request, name: Annotated[str, Depends(tenant)]) -> Response:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise ApiError(411, "length_required", "calls need a Content-Length")
        if int(length) > RPC_MAX_BODY:
            raise ApiError(413, "payload_too_large", f"calls are limited to {RPC_MAX_BODY} bytes")
        body = await request.body()
        scope = scope_for(name)
        reply = await run_in_threadpool(answer, scope.call, body)
        return Response(reply, media_type=CONTENT_TYPE)
