"""The simulator: ``cloud.start_simulator()`` and ``cloud.mp``, with no server at all."""

from __future__ import annotations

import secrets

from picloud_compat.settings import Settings


def start_local_client(settings: Settings, connection_type: str = "simulation"):  # type: ignore[no-untyped-def]
    """A `Client` backed by a fresh `LocalCluster` (closed together with the client)."""
    from picloud_compat.client import Client
    from picloud_compat.simulator.cluster import LocalCluster
    from picloud_compat.tenancy import SIMULATOR_TENANT

    if not settings.signing_key:
        settings = settings.replace(signing_key=secrets.token_hex(32))
    cluster = LocalCluster(settings)
    return Client(
        settings,
        cluster.store,
        SIMULATOR_TENANT,
        connection_type=connection_type,
        concurrency=lambda _queue: cluster.processes,
        owner=cluster,
    )
