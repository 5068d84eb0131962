"""``picloud.run_chunk``: the one Celery task; a thin shell around the job process.

Its message carries only ``{"t": tenant, "j": first jid, "n": count}``. When the pool
process running a chunk dies (killed job, OOM, segfault), Celery reports
`WorkerLostError` in the main process, and `ChunkRequest` hands the chunk to the
store's recovery at once instead of waiting for the lease to lapse.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import Terminated, WorkerLostError
from celery import Task
from celery.worker.request import Request

from picloud_compat.config.compute_types import PRIORITY_SEP
from picloud_compat.cron.redbeat import RedBeatEntries
from picloud_compat.errors import ChunkJobsFailed
from picloud_compat.messages import TASK_NAME, body_env, parse_body
from picloud_compat.runner import process
from picloud_compat.runner.executor_pool import ExecutorPool
from picloud_compat.runner.hygiene import RECYCLE_EXIT, ProcessDamaged
from picloud_compat.runner.state_file import worker_name
from picloud_compat.store.records import ChunkRef
from picloud_compat.tasks.app import app
from picloud_compat.tenant_services import TenantServices

log = logging.getLogger("picloud.tasks")


class ChunkRequest(Request):
    """Recovers a chunk whose pool process died, from the worker's main process."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """Celery's failure hook: recover first, then let Celery report it."""
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit) and self.worker_pid:
            end_process_group(self.worker_pid)
            try:
                chunk = ChunkRef(*parse_body(list(self.args)))
                recycled = (isinstance(exc, SystemExit) and exc.code == RECYCLE_EXIT) or (
                    f"exitcode {RECYCLE_EXIT}." in str(exc)
                )
                reason = (
                    "worker replaced after a job damaged it" if recycled else f"worker lost: {exc}"
                )
                store = process.cluster_store()
                dead = worker_name(self.worker_pid)
                loss = store.recover(chunk, dead, reason)
                log.info("chunk %s: worker lost; %s", chunk.key, loss)
                # and what it ran of other chunks (stolen jobs: `runner.stealing`)
                store.recover_worker(dead, reason)
                if "killed" in store.statuses(chunk.tenant, list(chunk.jids)):
                    # the process died because a job of it was killed: monitoring should
                    # say revoked (what Celery says of a terminated task), not failed
                    self._announce_revoked("terminated", True, "SIGKILL", False)
                    return
            except Exception:
                log.exception("recovering a lost worker's chunk failed; the reaper will retry")
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


def end_process_group(dead_pid: int) -> None:
    """SIGKILL what the jobs of a dead pool process left running: its process group
    (`workers.lifecycle`). Only while no live process has that pid: a group outlives
    its leader, and its id cannot be given to a new process while it has members."""
    import psutil

    try:
        if psutil.Process(dead_pid).status() != psutil.STATUS_ZOMBIE:
            return  # alive (SystemExit while running), or the pid was reused
    except psutil.NoSuchProcess:
        pass
    try:
        os.killpg(dead_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # no members left (or not a group of ours)


class ChunkTask(Task):  # type: ignore[misc]
    """The task class whose requests recover lost chunks."""

    Request = ChunkRequest


def tenant_services(tenant: str) -> TenantServices:
    """What answers an executor's ``cloud.files`` and ``cloud.cron`` calls (tenant mode)."""
    settings = process.worker_settings()
    return TenantServices(settings, tenant, RedBeatEntries(settings))


@app.task(  # type: ignore[misc]
    name=TASK_NAME,
    base=ChunkTask,
    ignore_result=True,
    bind=True,
    throws=(ChunkJobsFailed, Terminated),  # expected: logged in a line, not as a crash
)
def run_chunk(task: Task, spec: dict[str, Any]) -> int:
    """Run the chunk's still-queued jobs in this pool process.

    A job that damaged the process (threads left running, a closed stdout) makes it
    leave: billiard reports the SystemExit and replaces the process, and the failure
    hook gives the rest of the chunk to other processes."""
    try:
        delivery = task.request.delivery_info or {}
        compute_type = str(delivery.get("routing_key") or "").split(PRIORITY_SEP)[0]
        chunk = ChunkRef(*parse_body([spec]))
        env = body_env([spec])
        if env:  # in the environment's interpreter, in an executor
            pool = process.celery_env_pool(tenant_services)
            runner: process.JobProcess | ExecutorPool = pool
            ran = pool.run(chunk, compute_type, env)
        else:
            runner = process.celery_job_process(tenant_services)
            ran = runner.run(chunk, compute_type)
        killed = getattr(runner, "killed", None)
        if killed is not None:  # its executor was killed with a job: revoked, as in Celery
            raise Terminated(f"job {chunk.tenant}/{killed} was killed")
        if runner.failed:  # recorded already; this only makes monitoring say so
            raise ChunkJobsFailed(chunk.tenant, runner.failed, ran)
        return ran
    except ProcessDamaged as exc:
        log.warning("replacing this pool process: %s", exc)
        raise SystemExit(RECYCLE_EXIT) from exc
