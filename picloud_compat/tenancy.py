"""Which tenant (API key) a client acts as."""

from __future__ import annotations

import re

from picloud_compat.errors import ConfigurationError
from picloud_compat.settings import Settings

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SIMULATOR_TENANT = "local"


def validate_tenant(name: str) -> str:
    """`name` if it is safe to embed in Redis keys and S3 prefixes, else ConfigurationError."""
    if not isinstance(name, str) or not TENANT_PATTERN.match(name):
        raise ConfigurationError(
            f"api_key must be 1-64 characters of letters, digits, '_' or '-', got {name!r}"
        )
    return name


def tenant_for(settings: Settings) -> str:
    """The tenant a cluster client acts as; fails early if key or signing key is missing."""
    if not settings.api_key:
        raise ConfigurationError(
            "no api_key configured: call cloud.setkey(api_key, api_secretkey, server_url=...) "
            "or set PICLOUD_API_KEY"
        )
    if not settings.signing_key:
        raise ConfigurationError(
            "no signing_key configured: set PICLOUD_SIGNING_KEY to the cluster's shared secret "
            "(the same value the workers use)"
        )
    return validate_tenant(str(settings.api_key))
