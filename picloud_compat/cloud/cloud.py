"""``cloud.cloud``: where PiCloud's client defined its exceptions.

User code often catches ``cloud.cloud.CloudException``; the names live here too.
"""

from __future__ import annotations

from picloud_compat.errors import CloudException, CloudTimeoutError

__all__ = ["CloudException", "CloudTimeoutError"]
