"""The gateway's routes: published functions (``/r``) and jobs (``/job``)."""

import json
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from picloud_compat.client.info import ALL_INFO
from picloud_compat.client.jobs import Client
from picloud_compat.errors import CloudException, UnknownJobError
from picloud_compat.jobspec import JobSpec
from picloud_compat.rest.http import (
    ARGUMENTS_BODY,
    MAP_BODY,
    ApiError,
    EndpointInfo,
    JobCreated,
    JobInfo,
    JobResult,
    JobsCreated,
    arguments,
    checked_jid,
    checked_label,
    info_query,
    jsonable,
    map_rows,
)
from picloud_compat.rest.registry import RestRegistry
from picloud_compat.status import FINISHED

INFO_FIELDS = tuple(f for f in ALL_INFO if f not in ("profile", "worker", "parent"))


def endpoint_routes(app: FastAPI, Tenant: Any) -> None:
    """``/r``: list, describe and invoke published functions."""

    @app.get("/r", summary="List published functions")
    def list_endpoints(client: Tenant) -> list[str]:
        return RestRegistry(client).list()

    @app.get("/r/{label}", summary="Describe a published function", response_model=EndpointInfo)
    def describe(label: str, client: Tenant) -> dict[str, Any]:
        return RestRegistry(client).info(checked_label(label))

    @app.post(
        "/r/{label}",
        openapi_extra=ARGUMENTS_BODY,
        summary="Invoke a published function: creates a job",
        response_model=JobCreated,
    )
    async def invoke(label: str, request: Request, client: Tenant) -> dict[str, Any]:
        kwargs = await arguments(request)
        try:
            return {"jid": RestRegistry(client).invoke(checked_label(label), kwargs)}
        except ValueError as exc:
            raise ApiError(400, "bad_arguments", str(exc)) from None

    @app.post(
        "/r/{label}/map",
        openapi_extra=MAP_BODY,
        summary="Invoke a function once per element: creates jobs",
        response_model=JobsCreated,
    )
    async def invoke_map(label: str, request: Request, client: Tenant) -> dict[str, Any]:
        rows = map_rows(await arguments(request))
        try:
            return {"jids": RestRegistry(client).invoke_map(checked_label(label), rows)}
        except ValueError as exc:
            raise ApiError(400, "bad_arguments", str(exc)) from None


def job_routes(app: FastAPI, Tenant: Any) -> None:
    """``/job/{jid}``: status and info, result, kill, delete."""

    @app.get("/job/{jid}", summary="A job's status and information", response_model=JobInfo)
    def job_info(
        jid: int, client: Tenant, field: Annotated[list[str] | None, info_query()] = None
    ) -> dict[str, Any]:
        fields = list(field or ["status", "stdout", "stderr", "runtime", "exception"])
        bad = [f for f in fields if f not in INFO_FIELDS]
        if bad:
            raise ApiError(
                400, "bad_request", f"unknown field(s) {bad}; available: {list(INFO_FIELDS)}"
            )
        # one read: a status read apart from the fields could say "done" next to the
        # output of a job that was still running
        info = client.info(checked_jid(jid), ["status", *fields])[jid]
        status = info["status"] if "status" in fields else info.pop("status")
        return {"jid": jid, "status": status, "info": jsonable(info)}

    @app.get("/job/{jid}/result", summary="A finished job's result", response_model=JobResult)
    def job_result(jid: int, client: Tenant) -> Any:
        status = client.status(checked_jid(jid))
        if status not in FINISHED:
            raise ApiError(409, "job_not_done", f"job {jid} is {status}, not finished")
        if status != "done":
            exc = client.waiter.failure(jid, status)
            raise ApiError(422, f"job_{status}", str(exc.parameter))
        value = client.waiter.results_now([jid])[0]
        encoding = _encoding(client, jid)
        if encoding == "raw":
            if isinstance(value, bytes):
                return Response(value, media_type="application/octet-stream")
            if isinstance(value, str):
                text = value.encode("utf-8", "backslashreplace")  # lone surrogates escaped
                return Response(text, media_type="text/plain; charset=utf-8")
            raise ApiError(422, "result_not_raw", "the function returned neither str nor bytes")
        try:
            # ASCII JSON: text a job made of undecodable bytes (lone surrogates) travels
            # as \u escapes instead of failing the response
            body = json.dumps({"jid": jid, "result": value}, ensure_ascii=True)
        except (TypeError, ValueError):
            raise ApiError(
                422, "result_not_json", f"the result ({type(value).__name__}) is not JSON"
            ) from None
        return Response(body, media_type="application/json")

    @app.post("/job/{jid}/kill", summary="Kill a job")
    def kill(jid: int, client: Tenant) -> dict[str, Any]:
        client.kill(checked_jid(jid))
        return {"jid": jid, "status": client.status(jid)}

    @app.delete("/job/{jid}", summary="Delete a finished job's data", status_code=204)
    def delete(jid: int, client: Tenant) -> Response:
        try:
            client.delete(checked_jid(jid))
        except UnknownJobError:
            raise
        except CloudException as exc:
            raise ApiError(409, "job_not_done", str(exc.parameter)) from None
        return Response(status_code=204)


def _encoding(client: Client, jid: int) -> str:
    """How a REST invocation's result is returned ('json' unless published 'raw')."""
    entry = client.store.info(client.tenant, [jid], ["spec"])[0] or {}
    spec_id = entry.get("spec")
    raw = client.store.spec(client.tenant, spec_id) if isinstance(spec_id, str) else None
    return (JobSpec.from_json(raw).rest_encoding if raw else None) or "json"
