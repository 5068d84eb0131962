"""A simulator job process: pulls chunks from the parent and runs them.

Started by `LocalCluster` as ``python -m picloud_compat.simulator.worker`` (with an
environment's interpreter for that environment's chunks); reads its configuration
(socket address, auth key, settings, environment) as one JSON line on stdin, so no
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
from picloud_compat.environments.registry import EnvRegistry
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

    env, refusal = config.get("env", ""), config.get("refusal")
    job_process = JobProcess(settings, store, identity, job_client, refusal=refusal)
    parent = os.getppid()
    while os.getppid() == parent:
        try:  # a refusal fails what is queued now, no more: a later chunk builds again
            chunk = store.next_chunk(0.0 if refusal else 1.0, identity.worker, env)
        except (EOFError, OSError):
            return  # the simulator shut down
        if chunk is None and refusal:
            return
        if chunk is not None and refusal and _recreated(store, env, config.get("digest", "")):
            os._exit(0)  # the simulator gives its chunk back and builds the new one
        if chunk is not None:
            try:
                job_process.run(chunk)
            except ProcessDamaged as exc:  # leave; the simulator starts a fresh process
                print(f"picloud simulator: replacing a job process: {exc}", file=sys.__stderr__)
                os._exit(RECYCLE_EXIT)


def _recreated(store: RemoteStore, env: str, digest: str) -> bool:
    """Whether environment `env` (KEY:NAME) is no longer the one whose build failed."""
    tenant, _, name = env.partition(":")
    try:
        return EnvRegistry(store, tenant).get(name).digest() != digest
    except Exception:  # gone or unreadable: the refusal's reason may be stale too
        return bool(digest)


if __name__ == "__main__":
    main()
