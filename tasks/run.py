"""``picloud.run_chunk``: the one Celery task; a thin shell around `ChunkRunner`.

Its message carries only ``{"t": tenant, "j": first jid, "n": count}``. When the pool
process running a chunk dies (killed job, OOM, segfault), Celery reports
`WorkerLostError` in the main process, and `ChunkRequest` hands the chunk to the job
store's recovery at once instead of waiting for the lease to lapse.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.worker.request import Request

from picloud_compat.messages import TASK_NAME, parse_body
from picloud_compat.runner import worker_name
from picloud_compat.store.base import ChunkRef
from picloud_compat.tasks.app import app
from picloud_compat.workers import runtime

log = logging.getLogger("picloud.tasks")


class ChunkRequest(Request):
    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit) and self.worker_pid:
            try:
                tenant, first, count = parse_body(list(self.args))
                loss = runtime.main_store().recover(
                    ChunkRef(tenant, first, count),
                    worker_name(self.worker_pid),
                    f"worker lost: {exc}",
                )
                log.info("chunk %s/%s+%s: worker lost; %s", tenant, first, count, loss)
            except Exception:
                log.exception("recovering a lost worker's chunk failed; the reaper will retry")
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class ChunkTask(Task):
    Request = ChunkRequest


@app.task(name=TASK_NAME, base=ChunkTask, ignore_result=True)
def run_chunk(spec: dict[str, Any]) -> int:
    tenant, first, count = parse_body([spec])
    return runtime.runner().run(ChunkRef(tenant, first, count))
