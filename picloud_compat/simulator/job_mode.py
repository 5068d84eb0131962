"""The mode of clients inside simulated jobs (in the simulator's job processes).

Files are the same directory as the script's; crons registered here are stored in the
parent's store, whose clock fires them. Publishing REST functions needs the script's
process (which serves them), so it is refused with a clear error here.
"""

from __future__ import annotations

from typing import Any

from picloud_compat.client.mode import CronBeat, local_files
from picloud_compat.errors import CloudException
from picloud_compat.files.base import FileStore
from picloud_compat.settings import Settings


class _ParentClock:
    def save(self, tenant: str, label: str, expr: str, queue: str) -> None:
        """The parent's clock finds the record on its next tick."""

    def delete(self, tenant: str, label: str) -> None:
        """The record is removed by the registry."""


class SimulatedJobMode:
    """What differs for `cloud.*` called inside a simulated job."""

    def __init__(self, settings: Settings, name: str = "simulation") -> None:
        self.settings = settings
        self.name = name

    def files(self, tenant: str) -> FileStore:
        """The simulator's files directory."""
        return local_files(self.settings, tenant)

    def beat(self) -> CronBeat:
        """The parent process's clock."""
        return _ParentClock()

    def gateway_url(self) -> str:
        """Refused: the local gateway lives in the script's process."""
        raise CloudException("on the simulator, publish REST functions from the script itself")

    def describe(self, tenant: str) -> dict[str, Any]:
        """The number of simulator processes."""
        return {"num_procs": self.settings.processes}

    def close(self) -> None:
        """Nothing to stop."""
