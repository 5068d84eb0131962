"""A simulator worker process: pulls chunks from the parent and runs them.

Started by `LocalCluster` as ``python -m picloud_compat.simulator.worker``; reads its
configuration (socket address, auth key, settings) as one JSON line on stdin, so no
secret appears in the process list or the environment jobs can read.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from picloud_compat import client, helping
from picloud_compat.runner import ChunkRunner, RunnerIdentity, worker_name
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer
from picloud_compat.simulator.rpc import RemoteStore


def main() -> None:
    config = json.loads(sys.stdin.readline())
    sys.stdin = open(os.devnull)  # noqa: SIM115 - jobs must not read our pipe
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    settings = Settings(**config["settings"])
    store = RemoteStore(config["address"], bytes.fromhex(config["authkey"]))
    codecs: dict[str, Codec] = {}

    def codec_for(tenant: str) -> Codec:
        if tenant not in codecs:
            codecs[tenant] = Codec(
                Signer(settings.signing_key or "", tenant), settings.max_transmit_data
            )
        return codecs[tenant]

    identity = RunnerIdentity(worker_name(), config["warden"], Path(config["state_dir"]))
    runner = ChunkRunner(store, settings, codec_for, identity)
    helping.register_runner(runner)
    processes = int(config["processes"])
    client.set_job_client_factory(
        lambda tenant: client.Client(
            settings, store, tenant, connection_type="simulation", concurrency=lambda _q: processes
        )
    )
    parent = os.getppid()
    while os.getppid() == parent:
        try:
            chunk = store.next_chunk(1.0, identity.worker)
        except (EOFError, OSError):
            return  # the simulator shut down
        if chunk is not None:
            runner.run(chunk)


if __name__ == "__main__":
    main()
