"""The pages besides jobs: queues and workers, crons, REST endpoints, usage, keys.

Queues and workers are the cluster's; a tenant sees which compute types are served and
how many slots are free (what it needs to know whether its jobs will run), the admin
also sees backlogs and each worker. Crons, endpoints and usage are per API key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.dashboard.context import Dashboard
from picloud_compat.store.records import ClusterMetrics

Text = str | None
USAGE_DAYS = 31


def cluster_routes(router: APIRouter, dash: Dashboard) -> None:
    """Register the cluster and record pages on `router`."""

    @router.get("/workers", summary="Dashboard: queues and workers")
    def workers(request: Request) -> Response:
        viewer = dash.sessions.viewer(request)
        metrics = dash.cluster.metrics() if dash.cluster is not None else None
        return dash.render(
            request,
            "workers.html",
            viewer,
            section="workers",
            types=queue_rows(metrics) if metrics else [],
            metrics=metrics,
        )

    @router.get("/crons", summary="Dashboard: crons")
    def crons(request: Request, key: Text = None) -> Response:
        return _records(request, key, "cron")

    @router.get("/rest", summary="Dashboard: published functions")
    def rest(request: Request, key: Text = None) -> Response:
        return _records(request, key, "rest")

    def _records(request: Request, key: Text, kind: Any) -> Response:
        viewer = dash.sessions.viewer(request)
        section = "crons" if kind == "cron" else "rest"
        tenant = viewer.tenant(key)
        if tenant is None:
            keys = dash.sessions.accounts.list_keys()
            return dash.render(request, "pick_key.html", viewer, keys=keys, section=section)
        labels = dash.store.record_labels(tenant, kind)
        records = []
        for label in labels[:500]:
            record = dash.store.record(tenant, kind, label)
            if record is not None:
                records.append({"label": label, **record})
        return dash.render(
            request,
            "records.html",
            viewer,
            section=section,
            tenant=tenant,
            kind=kind,
            records=records,
            more=max(0, len(labels) - 500),
        )

    @router.get("/usage", summary="Dashboard: jobs and CPU seconds per day")
    def usage(request: Request, key: Text = None) -> Response:
        viewer = dash.sessions.viewer(request)
        tenant = viewer.tenant(key)
        if tenant is not None:
            wanted = [tenant]
        else:
            wanted = [k.api_key for k in dash.sessions.accounts.list_keys()][:200]
        table = []
        for api_key in wanted:
            days = dash.store.usage(api_key)
            for day in sorted(days, reverse=True)[:USAGE_DAYS]:
                jobs, cpu = days[day]
                table.append({"key": api_key, "day": day, "jobs": jobs, "cpu": cpu})
        table.sort(key=lambda r: (r["day"], r["key"]), reverse=True)
        return dash.render(
            request, "usage.html", viewer, section="usage", tenant=tenant, table=table
        )


def queue_rows(metrics: ClusterMetrics) -> list[dict[str, Any]]:
    """Per compute type: backlog by priority, workers, processes, busy and free slots."""
    per_type: dict[str, dict[str, Any]] = {
        kind: {"type": kind, "workers": 0, "processes": 0, "busy": 0, "backlog": {}}
        for kind in COMPUTE_TYPES
    }
    for worker in metrics.workers:
        for kind in worker.queues:
            row = per_type.setdefault(
                kind, {"type": kind, "workers": 0, "processes": 0, "busy": 0, "backlog": {}}
            )
            row["workers"] += 1
            row["processes"] += worker.concurrency
            row["busy"] += min(worker.busy, worker.concurrency)
    backlog: dict[str, dict[int, int]] = defaultdict(dict)
    for (kind, priority), count in metrics.backlog.items():
        backlog[kind][priority] = count
    for kind, row in per_type.items():
        row["backlog"] = dict(sorted(backlog[kind].items()))
        row["waiting"] = sum(row["backlog"].values())
        row["free"] = row["processes"] - row["busy"]
    return list(per_type.values())
