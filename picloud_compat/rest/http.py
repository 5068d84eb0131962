"""HTTP shapes of the gateway: error and response models, and request parsing.

Kept apart from the routes so each route reads as what it does to jobs.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from picloud_compat.rest.registry import validate_label

MAX_MAP = 500


class ApiError(Exception):
    """An HTTP error with a stable code, rendered by the gateway's handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorBody(BaseModel):
    """A machine-readable error code and a human-readable message."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """The JSON body of every error reply."""

    error: ErrorBody


class JobCreated(BaseModel):
    """Reply to calling a published function: the new job's jid."""

    jid: int


class JobsCreated(BaseModel):
    """Reply to a map call: one jid per row of arguments."""

    jids: list[int]


class EndpointInfo(BaseModel):
    """How to call a published function."""

    label: str
    uri: str
    signature: dict[str, Any]
    output_encoding: str
    description: str


class JobInfo(BaseModel):
    """A job's status and the info fields asked for."""

    jid: int
    status: str
    info: dict[str, Any] = Field(default_factory=dict)


class JobResult(BaseModel):
    """A finished job's return value."""

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


def info_query() -> Any:
    """The repeatable ``field`` query parameter of ``GET /job/{jid}``."""
    return Query(description="info fields to return (repeatable)")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The gateway's one error shape: ``{"error": {"code", "message"}}``."""
    headers = {"WWW-Authenticate": 'Basic realm="picloud"'} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def describe_validation(exc: RequestValidationError) -> str:
    """FastAPI's validation errors in one line (at most five)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def checked_label(label: str) -> str:
    """A valid REST label, or a 400."""
    try:
        return validate_label(label)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def checked_jid(jid: int) -> int:
    """A plausible jid, or a 404 (as for any job that is not this key's)."""
    if jid <= 0 or jid > 2**53:
        raise ApiError(404, "not_found", f"no job {jid}")
    return jid


async def bounded_body(request: Request) -> bytes:
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


async def arguments(request: Request) -> dict[str, Any]:
    """Keyword arguments from a JSON object body or form fields with JSON values."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await bounded_body(request)
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


def map_rows(arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of keyword arguments from lists (length-1 lists broadcast), at most MAX_MAP."""
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


def jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """Info values made JSON-safe (datetimes as ISO strings)."""
    out = {}
    for key, value in info.items():
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
