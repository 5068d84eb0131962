"""The REST gateway (``picloud gateway``): published functions and jobs over HTTP.

Authentication is HTTP Basic with an API key and its secret (checked against the
hashed secrets of `accounts`); every failure gets the same 401. Errors are JSON with a
stable code: ``{"error": {"code": "...", "message": "..."}}``. Objects of other API
keys are simply not found (404), so their existence is not revealed. Bodies are
limited to ``rest_max_body`` bytes (413). The OpenAPI document is at /openapi.json.

Invoking: ``POST /r/<label>`` with a JSON object body, or form fields whose values are
JSON (PiCloud's convention; a value that is not JSON is taken as a string).
"""

import json
import logging
import threading
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from picloud_compat.accounts import AccountRegistry, InvalidCredentials
from picloud_compat.client import ALL_INFO, Client
from picloud_compat.errors import CloudException, ConnectionFailed, UnknownJobError
from picloud_compat.rest.registry import EndpointNotFound, RestRegistry
from picloud_compat.settings import Settings
from picloud_compat.status import FINISHED
from picloud_compat.store.redis_store import RedisJobStore

log = logging.getLogger("picloud.gateway")
MAX_MAP = 500
INFO_FIELDS = tuple(f for f in ALL_INFO if f not in ("profile", "worker", "parent"))


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class JobCreated(BaseModel):
    jid: int


class JobsCreated(BaseModel):
    jids: list[int]


class EndpointInfo(BaseModel):
    label: str
    uri: str
    signature: dict[str, Any]
    output_encoding: str
    description: str


class JobInfo(BaseModel):
    jid: int
    status: str
    info: dict[str, Any] = Field(default_factory=dict)


class JobResult(BaseModel):
    jid: int
    result: Any = None


ARGUMENTS_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            },
        },
    }
}
MAP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": {"type": "array"}}
            }
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 503)
}


def create_app(settings: Settings) -> FastAPI:
    store = RedisJobStore.from_url(settings.server_url or "", settings)
    accounts = AccountRegistry(store.redis, settings)
    clients: dict[str, Client] = {}
    lock = threading.Lock()
    basic = HTTPBasic(auto_error=False)

    app = FastAPI(
        title="picloud-compat gateway",
        version="1",
        description=__doc__,
        responses=ERRORS,
    )

    def tenant_client(
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    ) -> Client:
        if credentials is None:
            raise ApiError(401, "unauthorized", "HTTP Basic credentials required")
        try:
            accounts.authenticate(credentials.username, credentials.password)
        except InvalidCredentials:
            raise ApiError(401, "unauthorized", "invalid API key or secret") from None
        with lock:
            client = clients.get(credentials.username)
            if client is None:
                client = Client.for_cluster(settings, credentials.username, store, notices=False)
                clients[credentials.username] = client
        return client

    Tenant = Annotated[Client, Depends(tenant_client)]

    _error_handlers(app, settings)
    _endpoint_routes(app, Tenant)
    _job_routes(app, Tenant)
    app.state.store = store
    app.state.max_body = settings.rest_max_body
    return app


def _error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.rest_max_body):
            return _error(
                413, "payload_too_large", f"bodies are limited to {settings.rest_max_body} bytes"
            )
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, "bad_request", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(CloudException)
    async def cloud_error(_: Request, exc: CloudException) -> JSONResponse:
        if isinstance(exc, ConnectionFailed):
            return _error(503, "unavailable", "the job store is unreachable")
        if isinstance(exc, UnknownJobError | EndpointNotFound):
            return _error(404, "not_found", str(exc.parameter))
        return _error(400, "bad_request", str(exc.parameter))


def _endpoint_routes(app: FastAPI, Tenant: Any) -> None:
    @app.get("/r", summary="List published functions")
    def list_endpoints(client: Tenant) -> list[str]:
        return RestRegistry(client).list()

    @app.get("/r/{label}", summary="Describe a published function", response_model=EndpointInfo)
    def describe(label: str, client: Tenant) -> dict[str, Any]:
        return RestRegistry(client).info(_label(label))

    @app.post(
        "/r/{label}",
        openapi_extra=ARGUMENTS_BODY,
        summary="Invoke a published function: creates a job",
        response_model=JobCreated,
    )
    async def invoke(label: str, request: Request, client: Tenant) -> dict[str, Any]:
        kwargs = await _arguments(request)
        try:
            return {"jid": RestRegistry(client).invoke(_label(label), kwargs)}
        except ValueError as exc:
            raise ApiError(400, "bad_arguments", str(exc)) from None

    @app.post(
        "/r/{label}/map",
        openapi_extra=MAP_BODY,
        summary="Invoke a function once per element: creates jobs",
        response_model=JobsCreated,
    )
    async def invoke_map(label: str, request: Request, client: Tenant) -> dict[str, Any]:
        rows = _map_rows(await _arguments(request))
        try:
            return {"jids": RestRegistry(client).invoke_map(_label(label), rows)}
        except ValueError as exc:
            raise ApiError(400, "bad_arguments", str(exc)) from None


def _job_routes(app: FastAPI, Tenant: Any) -> None:
    @app.get("/job/{jid}", summary="A job's status and information", response_model=JobInfo)
    def job_info(
        jid: int, client: Tenant, field: Annotated[list[str] | None, _query()] = None
    ) -> dict[str, Any]:
        fields = list(field or ["status", "stdout", "stderr", "runtime", "exception"])
        bad = [f for f in fields if f not in INFO_FIELDS]
        if bad:
            raise ApiError(
                400, "bad_request", f"unknown field(s) {bad}; available: {list(INFO_FIELDS)}"
            )
        info = client.info(_jid(jid), fields)[jid]
        return {"jid": jid, "status": client.status(jid), "info": _jsonable(info)}

    @app.get("/job/{jid}/result", summary="A finished job's result", response_model=JobResult)
    def job_result(jid: int, client: Tenant) -> Any:
        status = client.status(_jid(jid))
        if status not in FINISHED:
            raise ApiError(409, "job_not_done", f"job {jid} is {status}, not finished")
        if status != "done":
            exc = client.failure(jid, status)
            raise ApiError(422, f"job_{status}", str(exc.parameter))
        value = client.finished_results([jid])[0]
        encoding = _encoding(client, jid)
        if encoding == "raw":
            if isinstance(value, bytes):
                return Response(value, media_type="application/octet-stream")
            if isinstance(value, str):
                return Response(value, media_type="text/plain; charset=utf-8")
            raise ApiError(422, "result_not_raw", "the function returned neither str nor bytes")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ApiError(
                422, "result_not_json", f"the result ({type(value).__name__}) is not JSON"
            ) from None
        return {"jid": jid, "result": value}

    @app.post("/job/{jid}/kill", summary="Kill a job")
    def kill(jid: int, client: Tenant) -> dict[str, Any]:
        client.kill(_jid(jid))
        return {"jid": jid, "status": client.status(jid)}

    @app.delete("/job/{jid}", summary="Delete a finished job's data", status_code=204)
    def delete(jid: int, client: Tenant) -> Response:
        try:
            client.delete(_jid(jid))
        except UnknownJobError:
            raise
        except CloudException as exc:
            raise ApiError(409, "job_not_done", str(exc.parameter)) from None
        return Response(status_code=204)


def _query() -> Any:
    from fastapi import Query

    return Query(description="info fields to return (repeatable)")


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="picloud"'} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _label(label: str) -> str:
    from picloud_compat.rest.registry import validate_label

    try:
        return validate_label(label)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def _jid(jid: int) -> int:
    if jid <= 0 or jid > 2**53:
        raise ApiError(404, "not_found", f"no job {jid}")
    return jid


async def _bounded_body(request: Request) -> bytes:
    """The body, refused as soon as it exceeds the limit (chunked bodies have no
    Content-Length for the middleware to check)."""
    limit = request.app.state.max_body
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"bodies are limited to {limit} bytes")
        parts.append(part)
    body = b"".join(parts)
    request._body = body  # lets request.form() parse what was already read
    return body


async def _arguments(request: Request) -> dict[str, Any]:
    """Keyword arguments from a JSON object body or form fields with JSON values."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _bounded_body(request)
    if not body:
        return {}
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception:
            raise ApiError(400, "bad_request", "malformed form body") from None
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                value = (await value.read()).decode("utf-8", errors="replace")
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out
    if kind not in ("application/json", ""):
        raise ApiError(
            400, "bad_request", f"unsupported content type {kind!r}; send JSON or a form"
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the JSON body must be an object of keyword arguments")
    return data


def _map_rows(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    if not arguments:
        raise ApiError(400, "bad_arguments", "map needs at least one argument list")
    lengths = set()
    for name, values in arguments.items():
        if not isinstance(values, list) or not values:
            raise ApiError(400, "bad_arguments", f"map argument {name!r} must be a non-empty list")
        if len(values) != 1:
            lengths.add(len(values))
    if len(lengths) > 1:
        raise ApiError(400, "bad_arguments", "map argument lists must have the same length (or 1)")
    count = lengths.pop() if lengths else 1
    if count > MAX_MAP:
        raise ApiError(400, "bad_arguments", f"at most {MAX_MAP} jobs per map")
    return [
        {name: values[0] if len(values) == 1 else values[i] for name, values in arguments.items()}
        for i in range(count)
    ]


def _encoding(client: Client, jid: int) -> str:
    entry = client.store.info(client.tenant, [jid], ["options"])[0] or {}
    oid = entry.get("options")
    raw = client.store.options(client.tenant, oid) if oid else None
    doc = json.loads(raw) if raw else {}
    return doc.get("rest_encoding", "json")


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in info.items():
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def app_from_environment() -> FastAPI:
    """The app for uvicorn's factory mode, configured from PICLOUD_* settings."""
    from picloud_compat.errors import ConfigurationError

    settings = Settings.load()
    if not settings.server_url or not settings.signing_key:
        raise ConfigurationError("the gateway needs PICLOUD_SERVER_URL and PICLOUD_SIGNING_KEY")
    return create_app(settings)
