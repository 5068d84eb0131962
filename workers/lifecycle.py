"""Celery worker lifecycle: state directory, the supervisor thread, registration.

Loaded by the worker through Celery's ``imports`` setting (`config.celeryconfig`), so
they run for ``celery -A picloud_compat.tasks.app worker`` as well as
``picloud worker``, while ``tasks/`` never imports this package.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import signals

from picloud_compat.environments.prebuilt import PREBUILT_ENV, registered
from picloud_compat.runner import process, slots
from picloud_compat.runner.state_file import DRAIN_MARKER, TASK_EVENTS_MARKER, worker_name
from picloud_compat.runner.stealing import QUEUES_ENV
from picloud_compat.workers.supervisor import Supervisor

log = logging.getLogger("picloud.worker")

_supervisor: Supervisor | None = None
_state_dir: Path | None = None


@signals.worker_process_init.connect
def _own_process_group(**_: Any) -> None:
    """Pool process: a process group of its own, which the processes its jobs start
    inherit. When it dies (SIGKILL, the OOM killer), the main process ends what its job
    left running by the group (`tasks.run.ChunkRequest`); its clean room cannot."""
    os.setpgid(0, 0)


@signals.worker_init.connect
def _prepare(sender: Any = None, **_: Any) -> None:
    """Main process, before the pool forks: children inherit these variables, and find
    the worker's core slots (``_cores``) in the state directory."""
    global _state_dir
    settings = process.worker_settings()  # fail fast on missing configuration
    if settings.isolation == "tenant" and os.geteuid() == 0:
        from picloud_compat.runner.executor_pool import check_readable_by_executors

        check_readable_by_executors()  # executors could not even start: say so now
    _state_dir = Path(tempfile.mkdtemp(prefix=f"picloud-worker-{os.getpid()}-"))
    os.environ[process.STATE_DIR_ENV] = str(_state_dir)
    os.environ[process.WARDEN_ENV] = worker_name()
    amqp = getattr(getattr(sender, "app", None), "amqp", None)
    if amqp is not None:  # the -Q selection: idle processes steal only work of these
        os.environ[QUEUES_ENV] = ",".join(sorted(amqp.queues.consume_from or ()))
    slots.prepare(_state_dir, int(getattr(sender, "concurrency", 0) or 1))


@signals.worker_ready.connect
def _start_supervisor(sender: Any = None, **_: Any) -> None:
    global _supervisor
    if _state_dir is None:
        return
    consumer = sender
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer else []
    concurrency = consumer.pool.num_processes if consumer and consumer.pool else 1
    settings = process.worker_settings()
    _supervisor = Supervisor(
        process.cluster_store(),
        worker_name(),
        _state_dir,
        queues,
        concurrency,
        settings.lease_seconds,
        check=_task_events_marker(consumer, _state_dir),
        environments=registered(os.environ.get(PREBUILT_ENV)),
    )
    _supervisor.start()
    log.info("picloud worker %s ready on %s (concurrency %s)", worker_name(), queues, concurrency)


def _task_events_marker(consumer: Any, state_dir: Path) -> Callable[[], None]:
    """A supervision hook keeping `TASK_EVENTS_MARKER` present while the worker sends
    task events (Flower switches them on remotely: Celery's ``enable_events``)."""
    marker = state_dir / TASK_EVENTS_MARKER

    def check() -> None:
        dispatcher = getattr(consumer, "event_dispatcher", None)
        groups = getattr(dispatcher, "groups", None) or ()
        on = bool(dispatcher is not None and dispatcher.enabled and "task" in groups)
        if on and not marker.exists():
            marker.touch()
        elif not on:
            marker.unlink(missing_ok=True)

    return check


@signals.worker_shutting_down.connect
def _drain(**_: Any) -> None:
    """Warm shutdown began (SIGTERM: scale-in, a deploy): runners stop starting jobs and
    give the rest back; jobs still running after ``drain_grace`` are recovered."""
    if _state_dir is None:
        return
    (_state_dir / DRAIN_MARKER).touch()
    if _supervisor is not None:
        grace = process.worker_settings().drain_grace
        log.warning("draining: giving back unstarted jobs, %ss for running ones", grace)
        _supervisor.drain(grace)


@signals.worker_shutdown.connect
def _shutdown(**_: Any) -> None:
    if _supervisor is not None:
        _supervisor.stop()
    if _state_dir is not None:
        shutil.rmtree(_state_dir, ignore_errors=True)
