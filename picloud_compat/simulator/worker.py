"""A simulator job process: pulls chunks from the parent and runs them.

Started by `LocalCluster` as ``python -m picloud_compat.simulator.worker``; reads its
configuration (socket address, auth key, settings) as one JSON line on stdin, so no
secret appears in the process list or the environment jobs can read. Everything else
is the same job-process bootstrap as a Celery pool process (`runner.process`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from picloud_compat.client.jobs import Client
from picloud_compat.runner.hygiene import RECYCLE_EXIT, ProcessDamaged, kill_descendants
from picloud_compat.runner.process import JobProcess
from picloud_compat.runner.state_file import RunnerIdentity, worker_name
from picloud_compat.settings import Settings
from picloud_compat.simulator.job_mode import SimulatedJobMode
from picloud_compat.simulator.rpc import RemoteStore


def _leave(*_: object) -> None:
    """The simulator stops: end what a running job started, then exit at once."""
    kill_descendants(os.getpid())
    os._exit(0)


def main() -> None:
    """Serve chunks until the parent goes away."""
    config = json.loads(sys.stdin.readline())
    sys.stdin = open(os.devnull)  # noqa: SIM115 - jobs must not read our pipe
    signal.signal(signal.SIGTERM, _leave)
    settings = Settings(**config["settings"])
    store = RemoteStore(config["address"], bytes.fromhex(config["authkey"]))
    identity = RunnerIdentity(worker_name(), config["warden"], Path(config["state_dir"]))
    mode = SimulatedJobMode(settings)

    def job_client(tenant: str) -> Client:
        return Client(settings, store, tenant, mode, owns=False)

    job_process = JobProcess(settings, store, identity, job_client)
    parent = os.getppid()
    while os.getppid() == parent:
        try:
            chunk = store.next_chunk(1.0, identity.worker)
        except (EOFError, OSError):
            return  # the simulator shut down
        if chunk is not None:
            try:
                job_process.run(chunk)
            except ProcessDamaged as exc:  # leave; the simulator starts a fresh process
                print(f"picloud simulator: replacing a job process: {exc}", file=sys.__stderr__)
                os._exit(RECYCLE_EXIT)


if __name__ == "__main__":
    main()
