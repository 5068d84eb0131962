"""``picloud worker`` / ``picloud beat``: start Celery with the platform's options."""

from __future__ import annotations

import os
import sys

import click

from picloud_compat.config.compute_types import QUEUES
from picloud_compat.environments.prebuilt import PREBUILT_ENV

WORKER_FLAGS = ["--without-gossip", "--without-mingle"]
"""The pool is the configuration's (``worker_pool``: prefork with a fast start)."""


def worker_argv(
    types: list[str], concurrency: int | None, loglevel: str, name: str | None
) -> list[str]:
    """The `celery worker` command line for the given queues (a list, so it can be tested)."""
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "picloud_compat.tasks.app",
        "worker",
        "-Q",
        ",".join(types),
        "-l",
        loglevel,
        *WORKER_FLAGS,
    ]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if name:
        argv += ["-n", name]
    return argv


@click.command("worker")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice([*QUEUES, "all"]),
    default=["c1"],
    show_default=True,
    envvar="PICLOUD_WORKER_TYPES",
    help="Compute type(s) (queues) to serve.",
)
@click.option(
    "--concurrency",
    "-c",
    type=int,
    envvar="PICLOUD_WORKER_CONCURRENCY",
    help="Processes (default: CPU count).",
)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--name", "-n", help="Celery node name (default celery@hostname).")
@click.option(
    "--env",
    "envs",
    multiple=True,
    envvar="PICLOUD_WORKER_ENVS",
    metavar="[KEY:]NAME",
    help="Environment (_env) to build before taking jobs, or find built in env_dir "
    "(e.g. baked into the image); NAME is PICLOUD_API_KEY's, KEY:NAME another key's.",
)
def worker(
    types: tuple[str, ...],
    concurrency: int | None,
    loglevel: str,
    name: str | None,
    envs: tuple[str, ...],
) -> None:
    """Run a prefork Celery worker for the given compute types."""
    chosen = list(QUEUES) if "all" in types else list(dict.fromkeys(types))
    if envs:
        os.environ[PREBUILT_ENV] = ",".join(_prebuilt(envs))
    argv = worker_argv(chosen, concurrency, loglevel, name)
    os.execv(argv[0], argv)


def _prebuilt(references: tuple[str, ...]) -> list[str]:
    """Build the environments before Celery starts; a clear exit if one cannot be."""
    from picloud_compat.environments.prebuilt import prebuild
    from picloud_compat.errors import CloudException
    from picloud_compat.runner.process import cluster_store, worker_settings

    try:
        return prebuild(references, worker_settings(), cluster_store(), click.echo)
    except (CloudException, ValueError) as exc:
        raise click.ClickException(f"cannot serve environment: {exc}") from None


@click.command("beat")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat with the Redis-backed schedule of `cloud.cron` (RedBeat).

    Several may run: a Redis lock lets one fire while the others stand by, and every
    scheduled time is served at most once either way.
    """
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "picloud_compat.tasks.app",
        "beat",
        "-S",
        "picloud_compat.cron.scheduler:CronScheduler",
        "-l",
        loglevel,
    ]
    os.execv(argv[0], argv)


@click.command("gateway")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PICLOUD_GATEWAY_HOST")
@click.option("--port", default=8080, show_default=True, type=int, envvar="PICLOUD_GATEWAY_PORT")
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="log every request (isolated clients make many)",
)
def gateway(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve published functions and jobs over HTTP (FastAPI on uvicorn)."""
    import uvicorn

    # a proxy's X-Forwarded-* headers are read only from the addresses ops name (uvicorn
    # would trust 127.0.0.1 by default: any local process could then pose as any client)
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "")
    uvicorn.run(
        "picloud_compat.rest.gateway:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )


@click.command("exporter")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PICLOUD_EXPORTER_HOST")
@click.option("--port", default=9808, show_default=True, type=int, envvar="PICLOUD_EXPORTER_PORT")
def exporter(host: str, port: int) -> None:
    """Serve the cluster's Prometheus metrics at /metrics (for clusters without a gateway;
    keep the port private: it needs no credentials)."""
    import threading

    from prometheus_client import start_http_server

    from picloud_compat.metrics import registry_for
    from picloud_compat.runner.process import cluster_store

    start_http_server(port, addr=host, registry=registry_for(cluster_store()))
    click.echo(f"serving metrics on http://{host}:{port}/metrics")
    threading.Event().wait()
