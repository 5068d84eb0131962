"""The REST gateway (``picloud gateway``): published functions and jobs over HTTP.

Authentication is HTTP Basic with an API key and its secret (checked against the
hashed secrets of `accounts`); every failure gets the same 401. Errors are JSON with a
stable code: ``{"error": {"code": "...", "message": "..."}}``. Objects of other API
keys are simply not found (404), so their existence is not revealed. Bodies are
limited to ``rest_max_body`` bytes (413). The OpenAPI document is at /openapi.json.

Invoking: ``POST /r/<label>`` with a JSON object body, or form fields whose values are
JSON (PiCloud's convention; a value that is not JSON is taken as a string).

The same app serves the simulator's published functions on a loopback port
(`rest.local`), where requests act as the simulator's tenant without credentials.
"""

import hmac
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import ClusterMode, Mode
from picloud_compat.dashboard import mount_dashboard
from picloud_compat.dashboard.context import DashboardStore
from picloud_compat.errors import (
    CloudException,
    ConfigurationError,
    ConnectionFailed,
    InvalidCredentials,
    UnknownJobError,
)
from picloud_compat.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from picloud_compat.metrics import exposition, registry_for
from picloud_compat.rest.http import ERRORS, ApiError, describe_validation, error_response
from picloud_compat.rest.registry import EndpointNotFound
from picloud_compat.rest.remote import ClientProtocol
from picloud_compat.rest.routes import endpoint_routes, job_routes
from picloud_compat.settings import Settings
from picloud_compat.store.contract import SupervisionStore, TenantStore
from picloud_compat.store.redis import RedisStore

log = logging.getLogger("picloud.gateway")

Authenticate = Callable[[HTTPBasicCredentials | None], str]
"""Credentials -> the tenant they act as; raises ApiError(401) when refused."""


def create_app(
    settings: Settings,
    store: TenantStore,
    mode: Mode,
    authenticate: Authenticate,
    metrics: SupervisionStore | None = None,
    dashboard: DashboardStore | None = None,
) -> FastAPI:
    """The gateway app over `store`; `authenticate` decides who a request acts as.
    With `metrics`, ``/metrics`` serves the cluster's figures to ``metrics_token``;
    with `dashboard` (the same store, with its browsing role), ``/dashboard`` serves
    the job dashboard."""
    clients: dict[str, Client] = {}
    lock = threading.Lock()
    basic = HTTPBasic(auto_error=False)

    app = FastAPI(
        title="picloud-compat gateway", version="1", description=__doc__, responses=ERRORS
    )

    def client_for(tenant: str) -> Client:
        with lock:
            client = clients.get(tenant)
            if client is None:
                # plain_results: a tenant's pickle never runs here, beside the secrets
                client = Client(
                    settings, store, tenant, mode, notices=False, owns=False, plain_results=True
                )
                clients[tenant] = client
        return client

    def tenant_client(
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    ) -> Client:
        return client_for(authenticate(credentials))

    Tenant = Annotated[Client, Depends(tenant_client)]

    _error_handlers(app, settings)
    endpoint_routes(app, Tenant)
    job_routes(app, Tenant)
    if metrics is not None:
        _metrics_route(app, settings, metrics)
    if dashboard is not None:
        mount_dashboard(app, settings, dashboard, client_for, metrics)
    app.state.store = store
    app.state.max_body = settings.rest_max_body
    return app


def _metrics_route(app: FastAPI, settings: Settings, store: SupervisionStore) -> None:
    registry = registry_for(store)

    @app.get("/metrics", include_in_schema=False)
    def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        token = settings.metrics_token
        if not token:
            raise ApiError(404, "not_found", "metrics are off here: set metrics_token")
        expected = f"Bearer {token}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise ApiError(401, "unauthorized", "metrics need the bearer token")
        return Response(exposition(registry), media_type=METRICS_CONTENT_TYPE)


def account_authenticator(store: TenantStore, settings: Settings) -> Authenticate:
    """HTTP Basic against the API keys in the store (one 401 for every failure)."""
    accounts = AccountRegistry(store, settings)

    def authenticate(credentials: HTTPBasicCredentials | None) -> str:
        if credentials is None:
            raise ApiError(401, "unauthorized", "HTTP Basic credentials required")
        try:
            accounts.authenticate(credentials.username, credentials.password)
        except InvalidCredentials:
            raise ApiError(401, "unauthorized", "invalid API key or secret") from None
        return credentials.username

    return authenticate


def _error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.rest_max_body):
            return error_response(
                413, "payload_too_large", f"bodies are limited to {settings.rest_max_body} bytes"
            )
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "bad_request", describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(CloudException)
    async def cloud_error(_: Request, exc: CloudException) -> JSONResponse:
        if isinstance(exc, ConnectionFailed):
            return error_response(503, "unavailable", "the job store is unreachable")
        if isinstance(exc, UnknownJobError | EndpointNotFound):
            return error_response(404, "not_found", str(exc.parameter))
        return error_response(400, "bad_request", str(exc.parameter))


def app_from_environment() -> ClientProtocol:
    """The app for uvicorn's factory mode, configured from PICLOUD_* settings: the
    client protocol (``/v1``) in front of the REST routes."""
    settings = Settings.load()
    if not settings.server_url or not settings.signing_key:
        raise ConfigurationError("the gateway needs PICLOUD_SERVER_URL and PICLOUD_SIGNING_KEY")
    store = RedisStore.from_url(settings.server_url, settings)
    mode = ClusterMode(settings)
    authenticate = account_authenticator(store, settings)
    app = create_app(settings, store, mode, authenticate, metrics=store, dashboard=store)
    accounts = AccountRegistry(store, settings)
    return ClientProtocol(settings, store, accounts.authenticate, mode.beat(), app)
