"""Prometheus metrics of a cluster: what autoscalers and alerts need, read from the store.

Served at ``/metrics`` by the gateway (with ``metrics_token`` as a bearer token) and by
``picloud exporter`` (a small process for clusters without a gateway, on a private
port). Each scrape reads the store once (`SupervisionStore.metrics`): queue lengths,
leases, worker registrations and the counters the store's scripts keep, so figures
are the cluster's, whichever process serves them, and survive restarts of it.

Per compute type: backlog (chunk messages waiting, also per priority), processes, busy
processes, free slots and live workers; cluster-wide: chunks in flight, jobs finished
by status, a job runtime histogram, and jobs requeued or failed because their worker
was lost. "Backlog per free slot" is what KEDA or an EC2 target-tracking policy scales
on (deploy/README.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.errors import ConnectionFailed
from picloud_compat.store.contract import SupervisionStore
from picloud_compat.store.records import RUNTIME_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ClusterCollector(Collector):
    """Reads the store at every scrape and describes it as metric families."""

    def __init__(self, store: SupervisionStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """One read of the store, as Prometheus metric families. An unreachable store
        (Redis down or failing over) is reported as ``picloud_store_up 0``, not as a
        failed scrape, so an alert can tell "the store is down" from "the exporter is"."""
        up = GaugeMetricFamily(
            "picloud_store_up", "Whether the job store (Redis) answered this scrape"
        )
        try:
            m = self.store.metrics()
        except ConnectionFailed:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        backlog = GaugeMetricFamily(
            "picloud_backlog_chunks",
            "Chunk messages waiting for a worker, per compute type and priority",
            labels=["type", "priority"],
        )
        for (kind, priority), count in sorted(m.backlog.items()):
            backlog.add_metric([kind, str(priority)], count)
        yield backlog

        per_type: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for worker in m.workers:
            for kind in worker.queues:
                row = per_type[kind]
                row["workers"] += 1
                row["processes"] += worker.concurrency
                row["busy"] += min(worker.busy, worker.concurrency)
        families = {
            "workers": ("picloud_workers", "Live workers serving the compute type"),
            "processes": ("picloud_processes", "Job processes serving the compute type"),
            "busy": ("picloud_processes_busy", "Of those, processes running a chunk"),
        }
        for field, (name, doc) in families.items():
            family = GaugeMetricFamily(name, doc, labels=["type"])
            for kind in COMPUTE_TYPES:
                family.add_metric([kind], per_type[kind][field])
            yield family
        free = GaugeMetricFamily(
            "picloud_free_slots", "Idle job processes of the compute type", labels=["type"]
        )
        for kind in COMPUTE_TYPES:
            free.add_metric([kind], per_type[kind]["processes"] - per_type[kind]["busy"])
        yield free
        yield GaugeMetricFamily(
            "picloud_chunks_in_flight", "Chunks being run (leased)", value=m.in_flight
        )

        finished = CounterMetricFamily(
            "picloud_jobs_finished", "Jobs that finished, by status", labels=["status"]
        )
        for status in ("done", "error", "killed", "stalled"):
            finished.add_metric([status], m.finished.get(status, 0))
        yield finished
        cumulative, buckets = 0, []
        for bound, count in zip((*RUNTIME_BUCKETS, float("inf")), m.runtime_buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "picloud_job_runtime_seconds",
            "Runtime of jobs that ran to an outcome",
            buckets=buckets,
            sum_value=m.runtime_sum,
        )
        yield CounterMetricFamily(
            "picloud_jobs_requeued",
            "Jobs put back in the queue after their worker was lost",
            value=m.requeued,
        )
        yield CounterMetricFamily(
            "picloud_jobs_lost",
            "Jobs that failed because their worker was lost too often (or not restartable)",
            value=m.lost,
        )


def registry_for(store: SupervisionStore) -> CollectorRegistry:
    """A registry holding just the cluster's metrics (no process metrics of the server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(store))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(registry)
