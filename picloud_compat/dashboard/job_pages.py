"""The job pages: the filtered list, one job's detail with live output, and actions.

Query values arrive as text and are parsed here, so a bad one gets a 400 page that
names it (FastAPI's own validation would answer in JSON). Kill and delete go through
the same `Client` the API uses, so they mean what `cloud.kill` and `cloud.delete` mean.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from picloud_compat.client.info import ALL_INFO
from picloud_compat.dashboard.auth import Viewer
from picloud_compat.dashboard.context import PREFIX, Dashboard
from picloud_compat.dashboard.listing import (
    STATUSES,
    BadFilter,
    JobFilter,
    JobLister,
    JobRow,
    matching_jids,
)
from picloud_compat.dashboard.pickled import describe, describe_arguments
from picloud_compat.errors import AuthenticityError, CloudException, UnknownJobError
from picloud_compat.files.blobs import REF
from picloud_compat.status import FINISHED
from picloud_compat.store.records import MAX_JID

DETAIL_FIELDS = [f for f in ALL_INFO if f not in ("stdout", "stderr", "profile")]
Text = str | None


def job_routes(router: APIRouter, dash: Dashboard) -> None:
    """Register the job pages on `router`."""

    @router.get("/jobs", summary="Dashboard: jobs")
    def jobs(
        request: Request,
        key: Text = None,
        status: Text = None,
        label: Text = None,
        function: Text = None,
        type: Text = None,
        since: Text = None,
        until: Text = None,
        below: Text = None,
    ) -> Response:
        viewer = dash.sessions.viewer(request)
        tenant = viewer.tenant(key)
        query = {"status": status, "label": label, "function": function, "type": type}
        query |= {"since": since, "until": until}
        flt = JobFilter(
            status=status or None,
            label=label or None,
            function=function or None,
            type=type or None,
            since=parse_time("since", since),
            until=parse_time("until", until),
        )
        if tenant is None:
            keys = dash.sessions.accounts.list_keys()
            return dash.render(request, "pick_key.html", viewer, keys=keys, section="jobs")
        page = JobLister(dash.store, tenant).page(flt, parse_jid("below", below))
        return dash.render(
            request,
            "jobs.html",
            viewer,
            section="jobs",
            tenant=tenant,
            page=page,
            query={k: v or "" for k, v in query.items()},
            statuses=STATUSES,
        )

    @router.get("/jobs/{jid}", summary="Dashboard: one job")
    def job(request: Request, jid: str, key: Text = None) -> Response:
        viewer, tenant, number = _job_target(dash, request, key, jid)
        info = dash.client_for(tenant).info(number, DETAIL_FIELDS)[number]
        return dash.render(
            request,
            "job.html",
            viewer,
            section="jobs",
            tenant=tenant,
            jid=number,
            info=info,
            arguments=_arguments(dash, tenant, number),
            result=_result(dash, tenant, number, info["status"]),
            output=_output(dash, tenant, number),
        )

    @router.get("/jobs/{jid}/output", summary="Dashboard: a job's output, polled while it runs")
    def output(request: Request, jid: str, key: Text = None) -> Response:
        viewer, tenant, number = _job_target(dash, request, key, jid)
        return dash.render(
            request,
            "_output.html",
            viewer,
            tenant=tenant,
            jid=number,
            output=_output(dash, tenant, number),
        )

    @router.post("/jobs/{jid}/kill", summary="Dashboard: kill a job")
    def kill(
        request: Request, jid: str, csrf: Annotated[Text, Form()] = None, key: Text = None
    ) -> Response:
        viewer, tenant, number = _job_target(dash, request, key, jid, csrf)
        dash.client_for(tenant).kill(number)
        return _back_to(f"{PREFIX}/jobs/{number}", viewer, tenant)

    @router.post("/jobs/{jid}/delete", summary="Dashboard: delete a finished job")
    def delete(
        request: Request, jid: str, csrf: Annotated[Text, Form()] = None, key: Text = None
    ) -> Response:
        viewer, tenant, number = _job_target(dash, request, key, jid, csrf)
        client = dash.client_for(tenant)
        if client.status(number) not in FINISHED:
            raise BadFilter(f"job {number} has not finished: kill it before deleting it")
        client.delete(number)
        return _back_to(f"{PREFIX}/jobs", viewer, tenant)

    @router.post("/jobs/bulk", summary="Dashboard: kill or delete every job with a label")
    def bulk(
        request: Request,
        action: Annotated[Text, Form()] = None,
        label: Annotated[Text, Form()] = None,
        csrf: Annotated[Text, Form()] = None,
        key: Text = None,
    ) -> Response:
        viewer = dash.sessions.viewer(request)
        dash.sessions.check_csrf(viewer, request, csrf)
        tenant = viewer.tenant(key)
        if tenant is None:
            raise BadFilter("pick an API key first")
        if action not in ("kill", "delete"):
            raise BadFilter(f"action {action!r} is neither 'kill' nor 'delete'")
        if not label:
            raise BadFilter("a bulk action needs a label")
        JobFilter(label=label)  # the same checks as the list's
        done = _bulk(dash, tenant, action, label)
        verb = "Killed" if action == "kill" else "Deleted"
        return dash.render(
            request,
            "bulk_done.html",
            viewer,
            section="jobs",
            tenant=tenant,
            message=f"{verb} {done} job{'s' if done != 1 else ''} labelled {label!r}.",
        )


def _bulk(dash: Dashboard, tenant: str, action: str, label: str) -> int:
    """Kill the label's unfinished jobs, or delete its finished ones; returns how many."""
    client = dash.client_for(tenant)
    lister = JobLister(dash.store, tenant)

    def labelled(row: JobRow) -> bool:
        return row.label == label and (row.status in FINISHED) == (action == "delete")

    if action == "kill":
        jids = matching_jids(lister, labelled, dash.store.unfinished(tenant))
        if jids:
            client.kill(jids)
        return len(jids)
    jids = matching_jids(lister, labelled)
    for start in range(0, len(jids), 10_000):
        client.delete(jids[start : start + 10_000])
    return len(jids)


def _job_target(
    dash: Dashboard, request: Request, key: Text, jid: str, csrf: Text | bool = False
) -> tuple[Viewer, str, int]:
    """The viewer, the tenant and the jid a job page is about (checking the form's
    CSRF token when `csrf` is not False)."""
    viewer = dash.sessions.viewer(request)
    if csrf is not False:
        dash.sessions.check_csrf(viewer, request, csrf if isinstance(csrf, str) else None)
    tenant = viewer.tenant(key)
    if tenant is None:
        raise BadFilter("pick an API key first")
    number = parse_jid("job id", jid)
    if number is None:
        raise BadFilter("a job id is required")
    if dash.store.statuses(tenant, [number])[0] is None:
        raise UnknownJobError(number)
    return viewer, tenant, number


def _back_to(path: str, viewer: Viewer, tenant: str) -> Response:
    target = path if not viewer.admin else f"{path}?key={tenant}"
    return RedirectResponse(target, status_code=303)


def _arguments(dash: Dashboard, tenant: str, jid: int) -> str:
    blob = dash.store.arguments(tenant, jid)
    return _summary(dash, tenant, blob, "arguments", describe_arguments)


def _result(dash: Dashboard, tenant: str, jid: int, status: str) -> str | None:
    if status != "done":
        return None
    blob = dash.store.results(tenant, [jid])[0]
    return _summary(dash, tenant, blob, "result", describe)


def _summary(dash: Dashboard, tenant: str, blob: bytes | None, what: str, show: Any) -> str:
    """A blob's summary, after its signature checks (it is parsed, never unpickled)."""
    if blob is None:
        return f"(no {what} stored)"
    if blob.startswith(REF):
        return f"(stored in S3: {blob[len(REF) :].decode(errors='replace')})"
    signer = dash.signer(tenant)
    if signer is None:
        return f"({len(blob)} bytes, sealed)"
    try:
        summary: str = show(signer.open(blob, what))
    except AuthenticityError:
        return f"({what} failed the signature check: not shown)"
    except CloudException as exc:
        return f"({exc.parameter})"
    return summary


def _output(dash: Dashboard, tenant: str, jid: int) -> dict[str, Any]:
    entry = dash.store.info(tenant, [jid], ["status", "stdout", "stderr"])[0] or {}
    status = str(entry.get("status") or "")
    return {
        "status": status,
        "stdout": entry.get("stdout") or "",
        "stderr": entry.get("stderr") or "",
        "live": status not in FINISHED,
    }


def parse_time(name: str, text: Text) -> float | None:
    """An ISO date-time (UTC unless it says otherwise) or epoch seconds."""
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or not 0 <= number < 1e11:
            raise BadFilter(f"{name} {text[:40]!r} is not a time")
        return number
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(f"{name} {text[:40]!r} is not a date-time such as 2026-11-30T19:00")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def parse_jid(name: str, text: Text) -> int | None:
    """A jid in the store's range, or None when absent."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 13) or not 1 <= int(text) < MAX_JID:
        raise BadFilter(f"{name} {text[:40]!r} is not a job id")
    return int(text)
