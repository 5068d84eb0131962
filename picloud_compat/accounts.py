"""API keys: the tenants of the platform.

A key is a public id (``api_key``, digits, as PiCloud's were) and a secret
(``api_secretkey``, 32 random bytes, shown once). Only ``HMAC-SHA256(pepper, secret)``
is stored, where the pepper is derived from the cluster's signing key and never
stored; checks use `hmac.compare_digest`. Every key owns its own job ids, results,
files, crons and REST labels (they are all stored under the key), and a deactivated key
is refused at the first call after `cloud.setkey`, by the REST gateway, at submit and
when workers claim its jobs. Keys live in the `RecordStore`, so they work on the
simulator too.

Managing keys needs the admin password from the settings (``admin_password``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from picloud_compat.errors import CloudException, ConfigurationError, InvalidCredentials
from picloud_compat.settings import Settings
from picloud_compat.signing import tenant_key
from picloud_compat.store.contract import RecordStore

ADMIN_USER = "admin"

__all__ = ["AccountRegistry", "ApiKey", "InvalidCredentials", "hash_secret"]


@dataclass(frozen=True)
class ApiKey:
    """What an admin sees of a key (never its secret or hash)."""

    api_key: str
    active: bool
    created: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The key as PiCloud's account API returned it."""
        return {
            "api_key": self.api_key,
            "active": self.active,
            "created": self.created,
            "note": self.note,
        }


def _pepper(settings: Settings) -> bytes:
    if not settings.signing_key:
        raise ConfigurationError("the account registry needs PICLOUD_SIGNING_KEY")
    return hmac.new(settings.signing_key.encode(), b"picloud-account-pepper", "sha256").digest()


def hash_secret(settings: Settings, secret: str) -> str:
    """The stored form of a secret: keyed, so a leaked store does not reveal it."""
    return hmac.new(_pepper(settings), secret.encode(), hashlib.sha256).hexdigest()


class AccountRegistry:
    """Creating, listing, (de)activating and checking API keys."""

    def __init__(self, store: RecordStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # -- admin operations ------------------------------------------------------------

    def check_admin(self, username: str, password: str) -> None:
        """Raise InvalidCredentials unless these are the admin's credentials."""
        expected = self.settings.admin_password
        if not expected:
            raise ConfigurationError("account management needs admin_password in the settings")
        ok_user = hmac.compare_digest(str(username).encode(), ADMIN_USER.encode())
        ok_pass = hmac.compare_digest(str(password).encode(), expected.encode())
        if not (ok_user and ok_pass):
            raise InvalidCredentials("invalid admin credentials")

    def create_key(self, note: str = "") -> tuple[str, str]:
        """Return (api_key, api_secretkey); the secret is not stored and cannot be recovered."""
        secret = secrets.token_urlsafe(32)
        api_key = self.store.create_account(hash_secret(self.settings, secret), note, time.time())
        return api_key, secret

    def list_keys(self, active_only: bool = False) -> list[ApiKey]:
        """Every key (or only active ones), by number."""
        keys = [ApiKey(a.api_key, a.active, a.created, a.note) for a in self.store.accounts()]
        return [k for k in keys if k.active or not active_only]

    def get_key(self, api_key: str) -> ApiKey:
        """One key; CloudException (404) if it does not exist."""
        found = self.store.account(api_key)
        if found is None:
            raise CloudException(f"no such API key {api_key}", status=404)
        return ApiKey(found.api_key, found.active, found.created, found.note)

    def set_active(self, api_key: str, active: bool) -> None:
        """(De)activate a key everywhere at once."""
        if not self.store.set_account_active(api_key, active):
            raise CloudException(f"no such API key {api_key}", status=404)

    def tenant_key(self, api_key: str) -> str:
        """The key's own signing key (hex), for clients that must not hold the cluster's
        secret: with it they seal and open only this key's blobs."""
        if self.store.account(api_key) is None:
            raise CloudException(f"no such API key {api_key}", status=404)
        if not self.settings.signing_key:
            raise ConfigurationError("issuing tenant keys needs PICLOUD_SIGNING_KEY")
        return tenant_key(self.settings.signing_key, api_key).hex()

    # -- checks ----------------------------------------------------------------------

    def check_client(self, api_key: str, secret: str | None) -> None:
        """What a connecting client can check: with the cluster's secret, the key's secret
        too; with only its tenant key (which peppers nothing), that the key exists and is
        active. The tenant key is then what counts: workers refuse work not sealed with
        it, and the gateway checks the secret."""
        if self.settings.signing_key:
            self.authenticate(api_key, secret)
            return
        found = self.store.account(str(api_key))
        if found is None or not found.active:
            raise InvalidCredentials()

    def authenticate(self, api_key: str, secret: str | None) -> None:
        """Raise InvalidCredentials unless the key exists, is active and the secret matches."""
        found = self.store.account(str(api_key))
        supplied = hash_secret(self.settings, secret or "")
        if found is None:
            hmac.compare_digest(supplied, supplied)  # same work as a real comparison
            raise InvalidCredentials()
        matches = hmac.compare_digest(supplied, found.secret_hash)
        if not (matches and found.active):
            raise InvalidCredentials()
