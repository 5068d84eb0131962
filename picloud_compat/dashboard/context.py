"""What every dashboard page needs: the store, the sessions, the templates.

Pages render Jinja2 templates (``templates/``) and use htmx (vendored in ``static/``,
so the dashboard works without reaching the internet) for live output, paging and
actions without a full reload. Failures become pages too: a bad filter is a 400 that
names the value, the store unreachable a 503 that says so, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from picloud_compat.client.jobs import Client
from picloud_compat.dashboard.auth import Sessions, Viewer
from picloud_compat.dashboard.listing import ListingStore
from picloud_compat.dashboard.throttle import SignInThrottle
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.store.contract import RecordStore, SupervisionStore

HERE = Path(__file__).parent
PREFIX = "/dashboard"


class DashboardStore(ListingStore, RecordStore, Protocol):
    """The store roles the pages read (RedisStore and MemoryStore have them all)."""


class Dashboard:
    """Shared by the page modules: one per gateway app."""

    def __init__(
        self,
        settings: Settings,
        store: DashboardStore,
        sessions: Sessions,
        client_for: Callable[[str], Client],
        cluster: SupervisionStore | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.client_for = client_for
        self.cluster = cluster  # None where there is no cluster to show (the simulator)
        self.throttle = SignInThrottle(settings.sign_in_attempts)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["when"] = when
        self.templates.env.filters["seconds"] = seconds
        self.templates.env.globals["prefix"] = PREFIX

    def signer(self, tenant: str) -> Signer | None:
        """Opens the tenant's blobs to check them (never to unpickle them)."""
        key = self.settings.signing_key
        return Signer(key, tenant) if key else None

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        """A page (or, for htmx requests asking for a fragment, the fragment's template)."""
        tenant = values.get("tenant")
        # admin links name the key they are about; a tenant's never need to
        keyq = f"?key={tenant}" if viewer is not None and viewer.admin and tenant else ""
        context = {"viewer": viewer, "keyq": keyq, **values}
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def error(self, request: Request, status: int, message: str) -> Response:
        """An error page, or a redirect to sign in for a missing session."""
        if status == 401:
            target = f"{PREFIX}/login"
            if request.headers.get("hx-request"):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        return self.render(request, "error.html", None, status=status, message=message)


def when(value: Any) -> str:
    """A time as the pages show it: UTC, to the second."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    else:
        try:  # records are tenant-written: a field may hold anything
            stamp = dt.datetime.fromtimestamp(float(value), dt.UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return "—"
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: Any) -> str:
    """A duration: milliseconds below a second, then seconds, minutes, hours."""
    if value is None:
        return "—"
    s = float(value)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.2f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
