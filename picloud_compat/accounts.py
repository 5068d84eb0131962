"""API keys: the tenants of the platform.

A key is a public id (``api_key``, digits, as PiCloud's were) and a secret
(``api_secretkey``, 32 random bytes, shown once). Only ``HMAC-SHA256(pepper, secret)``
is stored, where the pepper is derived from the cluster's signing key and never written
to Redis; checks use `hmac.compare_digest`. Every key owns its own job ids, results,
files, crons and REST labels (they are all stored under the key), and a deactivated key
is refused by `cloud.setkey`, by the REST gateway, at submit and when workers claim its
jobs.

Managing keys needs the admin password from the settings (``admin_password``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from picloud_compat import keys
from picloud_compat.errors import CloudException, ConfigurationError, store_errors
from picloud_compat.settings import Settings

ADMIN_USER = "admin"
FIRST_KEY = 1000


class InvalidCredentials(CloudException):
    """Unknown key, wrong secret or deactivated key (deliberately not told apart)."""

    def __init__(self, message: str = "invalid API key or secret, or the key is deactivated"):
        super().__init__(message, status=401)


@dataclass(frozen=True)
class ApiKey:
    api_key: str
    active: bool
    created: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
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
    return hmac.new(_pepper(settings), secret.encode(), hashlib.sha256).hexdigest()


class AccountRegistry:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings

    # -- admin operations ------------------------------------------------------------

    def check_admin(self, username: str, password: str) -> None:
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
        with store_errors("creating an API key"):
            number = self.redis.incr(keys.ACCOUNT_SEQ)
            api_key = str(FIRST_KEY + int(number))
            record = {
                "secret": hash_secret(self.settings, secret),
                "active": True,
                "created": time.time(),
                "note": note,
            }
            self.redis.hset(keys.ACCOUNTS, api_key, json.dumps(record))
        return api_key, secret

    def list_keys(self, active_only: bool = False) -> list[ApiKey]:
        with store_errors("listing API keys"):
            raw = self.redis.hgetall(keys.ACCOUNTS)
        out = [_decode(k.decode(), v) for k, v in raw.items()]
        out.sort(key=lambda k: int(k.api_key) if k.api_key.isdigit() else 0)
        return [k for k in out if k.active or not active_only]

    def get_key(self, api_key: str) -> ApiKey:
        raw = self._record(api_key)
        if raw is None:
            raise CloudException(f"no such API key {api_key}", status=404)
        return _decode(api_key, raw)

    def set_active(self, api_key: str, active: bool) -> None:
        raw = self._record(api_key)
        if raw is None:
            raise CloudException(f"no such API key {api_key}", status=404)
        record = json.loads(raw)
        record["active"] = active
        with store_errors("updating an API key"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(keys.ACCOUNTS, api_key, json.dumps(record))
            if active:
                pipe.srem(keys.INACTIVE_TENANTS, api_key)
            else:
                pipe.sadd(keys.INACTIVE_TENANTS, api_key)
            pipe.execute()

    # -- checks ----------------------------------------------------------------------

    def authenticate(self, api_key: str, secret: str | None) -> None:
        """Raise InvalidCredentials unless the key exists, is active and the secret matches."""
        raw = self._record(str(api_key))
        supplied = hash_secret(self.settings, secret or "")
        if raw is None:
            hmac.compare_digest(supplied, supplied)  # same work as a real comparison
            raise InvalidCredentials()
        record = json.loads(raw)
        matches = hmac.compare_digest(supplied, record["secret"])
        if not (matches and record.get("active", True)):
            raise InvalidCredentials()

    def _record(self, api_key: str) -> bytes | None:
        with store_errors("reading an API key"):
            return self.redis.hget(keys.ACCOUNTS, api_key)


def _decode(api_key: str, raw: bytes) -> ApiKey:
    record = json.loads(raw)
    return ApiKey(
        api_key,
        bool(record.get("active", True)),
        float(record.get("created", 0)),
        record.get("note", ""),
    )
