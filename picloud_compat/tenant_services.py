"""`cloud.files` and cron firing for isolated clients, served by the gateway.

An isolated client holds no S3 or Redis credentials. The gateway, which does, answers
for one tenant: listing, md5 and deletion are done here under the tenant's prefix, and
transfers go straight between client and S3 through presigned URLs that name exactly
one object of that tenant and expire (``presign_ttl``). Names are validated before
anything is signed, so no URL can reach outside the tenant's space.
"""

from __future__ import annotations

from typing import Any

from picloud_compat.client.mode import CronBeat
from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.cron.expressions import normalize
from picloud_compat.cron.registry import validate_label
from picloud_compat.errors import CloudException
from picloud_compat.files.names import MAX_FILE_SIZE, validate_name, validate_prefix
from picloud_compat.files.s3 import S3FileStore
from picloud_compat.settings import Settings

PRESIGN_TTL = 900
"""Seconds a presigned transfer URL stays valid."""


class TenantServices:
    """Files and crons of one tenant, for `TenantScope`'s ``files_*``/``cron_*`` calls."""

    def __init__(self, settings: Settings, tenant: str, beat: CronBeat | None) -> None:
        self.tenant = tenant
        self._settings = settings
        self._beat = beat
        self._files: S3FileStore | None = None

    def call(self, method: str, args: list[Any]) -> Any:
        """Run one service call; CloudException for an unknown one."""
        handler = getattr(self, "_" + method, None)
        if handler is None or not method.startswith(("files_", "cron_")):
            raise CloudException(f"unknown service call {method!r}")
        try:
            return handler(*args)
        except (TypeError, ValueError) as exc:
            raise CloudException(f"{method}: {exc}") from None

    def files(self) -> S3FileStore:
        """The tenant's S3 space (made on first use)."""
        if self._files is None:
            self._files = S3FileStore(self._settings, self.tenant)
        return self._files

    def _files_list(self, prefix: str) -> list[str]:
        return self.files().list(validate_prefix(prefix))

    def _files_md5(self, name: str) -> str | None:
        return self.files().md5(validate_name(name))

    def _files_delete(self, name: str) -> bool:
        return self.files().delete(validate_name(name))

    def _files_put_url(self, name: str, md5: str, size: int) -> list[Any]:
        if not isinstance(size, int) or not 0 <= size <= MAX_FILE_SIZE:
            raise ValueError(f"file size must be 0..{MAX_FILE_SIZE} bytes, got {size!r}")
        if not (isinstance(md5, str) and len(md5) == 32 and set(md5) <= set("0123456789abcdef")):
            raise ValueError(f"md5 must be 32 hex digits, got {md5!r}")
        url, headers = self.files().presign_put(validate_name(name), md5, size, PRESIGN_TTL)
        return [url, headers]

    def _files_get_url(self, name: str) -> str:
        return self.files().presign_get(validate_name(name), PRESIGN_TTL)

    def _cron_save(self, label: str, expr: str, queue: str) -> None:
        if self._beat is None:
            raise CloudException("this gateway does not fire crons")
        if queue not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {queue!r}")
        self._beat.save(self.tenant, validate_label(label), normalize(expr), queue)

    def _cron_delete(self, label: str) -> None:
        if self._beat is not None:
            self._beat.delete(self.tenant, validate_label(label))
