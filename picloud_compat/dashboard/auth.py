"""Who is looking at the dashboard: a tenant signed in with its API key, or the admin.

Signing in checks the key and secret as every other door does (`AccountRegistry`), or
the admin's password. The session is a cookie signed by itsdangerous with a key
derived from the cluster's secret (never the secret itself): HttpOnly, SameSite=Strict,
Secure over HTTPS (or when ``gateway_url``, the public address, is HTTPS: behind a TLS
proxy), valid for `SESSION_SECONDS`. Each request re-reads the key's account, so a
deactivated key is signed out at its next click; the cookie also carries a fingerprint
of the credential it was made with, so a new admin password (or a key's new secret)
signs out every earlier session.

Every form that changes something carries the session's CSRF token (a hidden field, or
htmx's ``X-CSRF-Token`` header), checked besides SameSite.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from picloud_compat.accounts import ADMIN_USER, AccountRegistry
from picloud_compat.dashboard.throttle import RequestLimiter
from picloud_compat.errors import CloudException, ConfigurationError, InvalidCredentials
from picloud_compat.settings import Settings

COOKIE = "picloud_dashboard"
SESSION_SECONDS = 12 * 3600


class NotSignedIn(CloudException):
    """The request has no valid session: the page sends the browser to sign in."""


class StaleForm(CloudException):
    """A change without the session's CSRF token (answered 403)."""


class NotVisible(CloudException):
    """What was asked for belongs to another key: answered as not found."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in party: a tenant (its API key) or the admin (``api_key`` None)."""

    api_key: str | None
    csrf: str

    @property
    def admin(self) -> bool:
        """The admin sees every key's jobs and the cluster's keys and usage."""
        return self.api_key is None

    @property
    def name(self) -> str:
        """What the page header shows."""
        return "admin" if self.api_key is None else f"API key {self.api_key}"

    def tenant(self, requested: str | None) -> str | None:
        """Whose jobs to show: a tenant's own, whatever it asks; for the admin the key it
        picked (None: not picked yet)."""
        if self.api_key is None:
            return requested or None
        if requested and requested != self.api_key:
            raise NotVisible(f"no API key {requested} here")
        return self.api_key


class Sessions:
    """Signs viewers in and out, and reads them back from the cookie."""

    def __init__(self, settings: Settings, accounts: AccountRegistry) -> None:
        if not settings.signing_key:
            raise ConfigurationError("the dashboard needs PICLOUD_SIGNING_KEY")
        key = hmac.new(settings.signing_key.encode(), b"picloud-dashboard", "sha256").hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="dashboard-session")
        self._fingerprint_key = hmac.new(key.encode(), b"credential", "sha256").digest()
        self.accounts = accounts
        self.settings = settings
        self.limiter = RequestLimiter(settings.dashboard_rate)

    def _fingerprint(self, credential: str) -> str:
        """Names the credential a session was made with, revealing nothing of it."""
        mac = hmac.new(self._fingerprint_key, credential.encode(), "sha256")
        return mac.hexdigest()[:32]

    def sign_in(self, api_key: str, secret: str) -> str:
        """The cookie value for these credentials; InvalidCredentials if refused."""
        api_key = api_key.strip()
        if api_key == ADMIN_USER:
            if not self.settings.admin_password:
                raise InvalidCredentials("the admin has no password here (admin_password)")
            self.accounts.check_admin(api_key, secret)
            fingerprint = self._fingerprint(self.settings.admin_password)
            return self._serializer.dumps(
                {"a": True, "c": secrets.token_urlsafe(16), "f": fingerprint}
            )
        self.accounts.authenticate(api_key, secret)
        account = self.accounts.store.account(api_key)
        if account is None:  # deleted between the two reads
            raise InvalidCredentials()
        fingerprint = self._fingerprint(account.secret_hash)
        return self._serializer.dumps(
            {"k": api_key, "c": secrets.token_urlsafe(16), "f": fingerprint}
        )

    def viewer(self, request: Request) -> Viewer:
        """The request's viewer; NotSignedIn without a valid, current session, and
        TooManyRequests past the viewer's request rate (`throttle.RequestLimiter`)."""
        viewer = self._viewer(request)
        self.limiter.take(viewer.api_key or ADMIN_USER)
        return viewer

    def _viewer(self, request: Request) -> Viewer:
        raw = request.cookies.get(COOKIE)
        if not raw:
            raise NotSignedIn("sign in first")
        try:
            data = self._serializer.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            raise NotSignedIn("the session expired or is not valid") from None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            raise NotSignedIn("the session is not valid")
        fingerprint = data.get("f")
        if not isinstance(fingerprint, str):
            raise NotSignedIn("the session is not valid")
        if data.get("a") is True:
            password = self.settings.admin_password
            if not password:
                raise NotSignedIn("the admin has no password here any more")
            if not hmac.compare_digest(fingerprint, self._fingerprint(password)):
                raise NotSignedIn("the admin password changed: sign in again")
            return Viewer(None, data["c"])
        key = data.get("k")
        account = self.accounts.store.account(key) if isinstance(key, str) else None
        if account is None or not account.active:
            raise NotSignedIn("this API key is not active")
        if not hmac.compare_digest(fingerprint, self._fingerprint(account.secret_hash)):
            raise NotSignedIn("this API key's secret changed: sign in again")
        return Viewer(account.api_key, data["c"])

    @staticmethod
    def check_csrf(viewer: Viewer, request: Request, form_token: str | None) -> None:
        """Refuse a change without the session's token (header or form field)."""
        supplied = request.headers.get("x-csrf-token") or form_token or ""
        if not hmac.compare_digest(supplied.encode(), viewer.csrf.encode()):
            raise StaleForm("the form is stale or from another site: reload the page")


def secure_transport(settings: Settings, request: Request) -> bool:
    """Whether browsers reach the dashboard over HTTPS: this request came over it, or
    the public address (``gateway_url``) is HTTPS, as behind a TLS proxy whose
    forwarded headers uvicorn does not trust."""
    return request.url.scheme == "https" or settings.gateway_url.lower().startswith("https://")


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""No inline script or style, no framing, forms only to this site: job output and
labels are tenant-written, and even if escaping failed somewhere they could not run."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show job output: never kept by a shared cache
}
HSTS = "max-age=31536000"
