"""The job dashboard, served by the gateway under ``/dashboard`` from the job store.

What PiCloud's website was and Flower is not: every job of a key, durable (it reads the
store, not an event stream), filtered, with its output, exception and actions; queues
and workers; crons, REST endpoints and usage. A tenant signs in with its API key and
sees only its own; the admin (``admin_password``) sees every key.

Modules: `auth` (sessions), `listing` (paging without loading everything), `pickled`
(argument summaries without unpickling), `context` (templates and error pages), and
the page modules `session_pages`, `job_pages` and `cluster_pages`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client.jobs import Client
from picloud_compat.dashboard.auth import (
    HSTS,
    SECURITY_HEADERS,
    NotSignedIn,
    NotVisible,
    Sessions,
    StaleForm,
    secure_transport,
)
from picloud_compat.dashboard.cluster_pages import cluster_routes
from picloud_compat.dashboard.context import HERE, PREFIX, Dashboard, DashboardStore
from picloud_compat.dashboard.job_pages import job_routes
from picloud_compat.dashboard.listing import BadFilter
from picloud_compat.dashboard.session_pages import session_routes
from picloud_compat.dashboard.throttle import TooManyRequests
from picloud_compat.errors import CloudException, ConnectionFailed, UnknownJobError
from picloud_compat.settings import Settings
from picloud_compat.store.contract import SupervisionStore

__all__ = ["PREFIX", "mount_dashboard"]

log = logging.getLogger("picloud.dashboard")

UNAVAILABLE = (
    "The job store is unavailable (Redis cannot be reached, or is failing over). "
    "Nothing is lost: reload in a few seconds."
)


def mount_dashboard(
    app: FastAPI,
    settings: Settings,
    store: DashboardStore,
    client_for: Callable[[str], Client],
    cluster: SupervisionStore | None = None,
) -> Dashboard:
    """Serve the dashboard from `app` under ``/dashboard``."""
    sessions = Sessions(settings, AccountRegistry(store, settings))
    dash = Dashboard(settings, store, sessions, client_for, cluster)
    static = _with_security_headers(settings, StaticFiles(directory=HERE / "static"))
    app.mount(f"{PREFIX}/static", static, name="dashboard-static")  # before the catch-all
    router = APIRouter(prefix=PREFIX, route_class=_route_class(dash), tags=["dashboard"])
    session_routes(router, dash)
    job_routes(router, dash)
    cluster_routes(router, dash)

    @router.api_route("/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    def not_found(rest: str) -> Response:
        """Any other address under the dashboard: its own 404 page, with its headers
        (FastAPI's would be JSON without them)."""
        raise NotVisible(rest)

    app.include_router(router)
    return dash


def _with_security_headers(settings: Settings, inner: ASGIApp) -> ASGIApp:
    """`inner` (the static files) answering with the pages' security headers, except
    that scripts and styles may be cached."""
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        https = scope["type"] == "http" and secure_transport(settings, Request(scope))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.update(headers)
                if https:
                    out["Strict-Transport-Security"] = HSTS
            await send(message)

        try:
            await inner(scope, receive, send_with_headers)
        except HTTPException as exc:  # a missing file: answered here, not by FastAPI
            await PlainTextResponse(exc.detail, exc.status_code)(scope, receive, send_with_headers)

    return app


def _route_class(dash: Dashboard) -> type[APIRoute]:
    """Routes whose failures become pages (the gateway's JSON errors are for its API),
    and whose responses carry the security headers (`auth.SECURITY_HEADERS`)."""

    class DashboardRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def page(request: Request) -> Response:
                try:
                    response = await handle(request)
                except Exception as exc:
                    response = _failure_page(dash, request, exc)
                response.headers.update(SECURITY_HEADERS)
                if secure_transport(dash.settings, request):
                    response.headers["Strict-Transport-Security"] = HSTS
                return response

            return page

    return DashboardRoute


def _failure_page(dash: Dashboard, request: Request, exc: Exception) -> Response:
    failures: list[tuple[type[Exception] | tuple[type[Exception], ...], int, Any]] = [
        (NotSignedIn, 401, None),
        (StaleForm, 403, None),
        (TooManyRequests, 429, None),
        ((NotVisible, UnknownJobError), 404, "Not found: no such job or key here."),
        (ConnectionFailed, 503, UNAVAILABLE),
        (BadFilter, 400, None),
        (RequestValidationError, 400, "The request is not valid: check the form's values."),
        (CloudException, 400, None),
    ]
    for kinds, status, message in failures:
        if isinstance(exc, kinds):
            text = message or str(getattr(exc, "parameter", exc))
            response = dash.error(request, status, text)
            if isinstance(exc, TooManyRequests):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
    log.exception("dashboard page %s failed", request.url.path)
    return dash.error(request, 500, "The page failed; the gateway's log has the details.")
