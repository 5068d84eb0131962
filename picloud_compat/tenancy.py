"""Which tenant (API key) a client acts as."""

from __future__ import annotations

import re

from picloud_compat.errors import ConfigurationError
from picloud_compat.settings import Settings
from picloud_compat.signing import Signer

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
    """The API key this client acts as; ConfigurationError naming what is missing."""
    if not settings.api_key:
        raise ConfigurationError(
            "no api_key configured: call cloud.setkey(api_key, api_secretkey, server_url=...) "
            "or set PICLOUD_API_KEY"
        )
    if not (settings.signing_key or settings.tenant_key):
        raise ConfigurationError(
            "no signing key configured: set PICLOUD_TENANT_KEY to the key issued with your "
            "API key (`picloud keys create` prints it), or PICLOUD_SIGNING_KEY to the "
            "cluster's shared secret"
        )
    return validate_tenant(str(settings.api_key))


def signer_for(settings: Settings, tenant: str) -> Signer:
    """The tenant's signer: from the shared secret where this process has it (workers,
    the gateway, a trusted team's clients), else from the tenant's own key."""
    if settings.signing_key:
        return Signer(settings.signing_key, tenant)
    if settings.tenant_key:
        try:
            key = bytes.fromhex(settings.tenant_key)
        except ValueError:
            raise ConfigurationError("tenant_key must be 64 hex digits") from None
        return Signer.from_tenant_key(key, tenant)
    raise ConfigurationError("no signing key: set PICLOUD_TENANT_KEY or PICLOUD_SIGNING_KEY")
