"""Signing in and out of the dashboard."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from picloud_compat.dashboard.auth import COOKIE, SESSION_SECONDS, StaleForm, secure_transport
from picloud_compat.dashboard.context import PREFIX, Dashboard
from picloud_compat.errors import InvalidCredentials

Text = str | None


def _same_site(request: Request) -> None:
    """Sign-in and sign-out have no session token yet (or any more): refuse them from
    another site's page instead (login CSRF), by what the browser says of the origin."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    # the host only: behind a TLS proxy this server sees http where the browser says https
    if site not in (None, "same-origin", "none") or (
        origin is not None and urlsplit(origin).netloc != request.url.netloc
    ):
        raise StaleForm("sign-in and sign-out are accepted from this site's pages only")


def session_routes(router: APIRouter, dash: Dashboard) -> None:
    """Register the sign-in pages on `router`."""

    @router.get("", summary="Dashboard: home", include_in_schema=False)
    @router.get("/", summary="Dashboard: home")
    def home(request: Request) -> Response:
        dash.sessions.viewer(request)
        return RedirectResponse(f"{PREFIX}/jobs", status_code=303)

    @router.get("/login", summary="Dashboard: sign-in form")
    def login_form(request: Request) -> Response:
        return dash.render(request, "login.html", None, failed=False)

    @router.post("/login", summary="Dashboard: sign in with an API key and its secret")
    def login(
        request: Request,
        api_key: Annotated[Text, Form()] = None,
        secret: Annotated[Text, Form()] = None,
    ) -> Response:
        _same_site(request)
        address = request.client.host if request.client else ""
        dash.throttle.check(address)
        try:
            if not api_key or not secret or len(api_key) > 100 or len(secret) > 200:
                raise InvalidCredentials("missing or oversized credentials")
            cookie = dash.sessions.sign_in(api_key, secret)
        except InvalidCredentials:
            dash.throttle.failed(address)
            return dash.render(request, "login.html", None, status=401, failed=True)
        response = RedirectResponse(f"{PREFIX}/jobs", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=secure_transport(dash.settings, request),
            path=PREFIX,
        )
        return response

    @router.post("/logout", summary="Dashboard: sign out")
    def logout(request: Request) -> Response:
        _same_site(request)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response
