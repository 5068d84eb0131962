"""What differs between a cluster and the simulator, decided once by `client.session`.

A `Client` never asks which mode it is in: whatever differs (where files live, how
crons get fired, where published functions are served, what `connection_info` says)
is a method of its `Mode`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from picloud_compat.files.base import FileStore
from picloud_compat.settings import Settings, getconfigpath


class CronBeat(Protocol):
    """Whatever fires crons: RedBeat entries on a cluster, a clock in the simulator."""

    def save(self, tenant: str, label: str, expr: str, queue: str) -> None:
        """Start firing the cron (its record is already stored)."""
        ...

    def delete(self, tenant: str, label: str) -> None:
        """Stop firing the cron."""
        ...


class Mode(Protocol):
    """The mode-specific services of a client."""

    name: str  # connection_type: "redis", "simulation" or "multiprocessing"

    def files(self, tenant: str) -> FileStore:
        """The tenant's `cloud.files` storage."""
        ...

    def beat(self) -> CronBeat:
        """What fires `cloud.cron` registrations."""
        ...

    def gateway_url(self) -> str:
        """Base URL published functions are served at (may start a local server)."""
        ...

    def describe(self, tenant: str) -> dict[str, Any]:
        """Mode-specific fields of `cloud.connection_info()`."""
        ...

    def close(self) -> None:
        """Stop whatever the mode started (the simulator, a local gateway)."""
        ...


class ClusterMode:
    """A cluster: S3 files, RedBeat crons, the operators' gateway."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._beat: CronBeat | None = None

    def files(self, tenant: str) -> FileStore:
        """S3 under ``files/<tenant>/``."""
        from picloud_compat.files.s3 import S3FileStore

        return S3FileStore(self.settings, tenant)

    def beat(self) -> CronBeat:
        """RedBeat entries read by ``picloud beat``."""
        if self._beat is None:
            from picloud_compat.cron.redbeat import RedBeatEntries

            self._beat = RedBeatEntries(self.settings)
        return self._beat

    def gateway_url(self) -> str:
        """The public URL ops configured for ``picloud gateway``."""
        return self.settings.gateway_url

    def describe(self, tenant: str) -> dict[str, Any]:
        """Server URL (credentials redacted) and API key."""
        return {"server_url": _redact(self.settings.server_url), "api_key": tenant}

    def close(self) -> None:
        """Nothing to stop: the store connection is closed by the client."""


def local_files(settings: Settings, tenant: str) -> FileStore:
    """A directory standing in for S3 (the simulator's `cloud.files`)."""
    from picloud_compat.files.local import LocalFileStore

    root = settings.files_dir or str(Path(getconfigpath()) / "files")
    return LocalFileStore(Path(root), tenant)


def _redact(url: str | None) -> str | None:
    if not url or "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
