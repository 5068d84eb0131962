"""`SimulatorMode`: what a client on the embedded simulator has instead of a cluster.

It owns the `LocalCluster` (job processes and their supervisor), stores files in a
directory, fires crons with a clock thread (so crons registered from inside simulated
jobs fire too), and serves published functions on a loopback port, started on first
use. Both stop with the mode.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from typing import Any

from picloud_compat.client.jobs import Client
from picloud_compat.client.mode import CronBeat, local_files
from picloud_compat.cron.clock import ClockBeat, CronClock
from picloud_compat.files.base import FileStore
from picloud_compat.settings import Settings
from picloud_compat.simulator.cluster import LocalCluster
from picloud_compat.tenancy import SIMULATOR_TENANT


class SimulatorMode:
    """The simulator's services, for every client sharing one `LocalCluster`."""

    def __init__(self, cluster: LocalCluster, name: str = "simulation", owns: bool = True) -> None:
        self.cluster = cluster
        self.settings = cluster.settings
        self.name = name
        self._owns = owns  # closing the mode stops the cluster
        self._lock = threading.Lock()
        self._clock: CronClock | None = None
        self._gateway: Any = None

    @classmethod
    def start(cls, settings: Settings, name: str = "simulation") -> SimulatorMode:
        """A mode on a fresh simulator (with a random signing key if none is set)."""
        if not settings.signing_key:
            settings = settings.replace(signing_key=secrets.token_hex(32))
        mode = cls(LocalCluster(settings), name)
        mode._start_clock()
        # A script that ends with jobs still running stops its simulator in order
        # (job processes get SIGTERM and leave quietly), not by tearing pipes.
        creator = os.getpid()
        atexit.register(lambda: os.getpid() == creator and mode.close())  # not in a fork
        return mode

    def client(self, tenant: str = SIMULATOR_TENANT, owns: bool | None = None) -> Client:
        """A client of `tenant` on this simulator. Closing it closes the mode and the
        store only if it `owns` them (by default: if this mode owns the simulator)."""
        owns = self._owns if owns is None else owns
        return Client(self.settings, self.cluster.store, tenant, self, owns=owns)

    def files(self, tenant: str) -> FileStore:
        """A directory standing in for S3."""
        return local_files(self.settings, tenant)

    def beat(self) -> CronBeat:
        """The clock thread, started on the first registration."""
        return ClockBeat(self._start_clock)

    def _start_clock(self) -> None:
        with self._lock:
            if self._clock is None:
                self._clock = CronClock(self.cluster.store, self._cron_client)
                self._clock.start()

    def _cron_client(self, tenant: str) -> Client:
        return Client(self.settings, self.cluster.store, tenant, self, notices=False, owns=False)

    def gateway_url(self) -> str:
        """The local gateway's URL, starting it on first use."""
        with self._lock:
            if self._gateway is None:
                from picloud_compat.rest.local import LocalGateway

                self._gateway = LocalGateway(
                    self.settings, self.cluster.store, self, SIMULATOR_TENANT
                )
            return str(self._gateway.url)

    def describe(self, tenant: str) -> dict[str, Any]:
        """The number of simulator processes."""
        return {"num_procs": self.settings.processes}

    def close(self) -> None:
        """Stop the clock, the gateway and (if owned) the simulator."""
        with self._lock:
            clock, gateway = self._clock, self._gateway
            self._clock = self._gateway = None
        if clock is not None:
            clock.stop()
        if gateway is not None:
            gateway.close()
        if self._owns:
            self.cluster.close()
