"""`RecordStore` on Redis: crons and REST endpoints per tenant, and the API keys.

A record is a hash, its sealed function a separate (persistent) string, and each
tenant has a set of its labels per kind. API keys live in one hash; deactivated keys
are also in a set that the submit and claim scripts check.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from picloud_compat.store import keys
from picloud_compat.store.records import Account, RecordKind
from picloud_compat.store.redis.base import RedisBase
from picloud_compat.store.redis.connection import as_blob, as_text, store_errors

FIRST_ACCOUNT = 1000
_KEYS: dict[str, tuple[Callable[[str, str], str], Callable[[str, str], str], Callable[[str], str]]]
_KEYS = {
    "cron": (keys.cron, keys.cron_function, keys.crons),
    "rest": (keys.rest, keys.rest_function, keys.rests),
    "env": (keys.env, keys.env_function, keys.envs),
}


class RedisRecords(RedisBase):
    """Named records with functions, plus accounts; each change one transaction."""

    def save_record(
        self,
        t: str,
        kind: RecordKind,
        label: str,
        fields: dict[str, str],
        function: bytes,
        replace: bool,
    ) -> bool:
        """Store a record with its function; False if it exists and not `replace`."""
        record_key, function_key, index_key = _KEYS[kind]
        key = record_key(t, label)
        with store_errors(f"saving a {kind} record"):
            if not replace and not self.redis.hsetnx(key, "label", label):
                return False
            pipe = self.redis.pipeline(transaction=True)
            if replace:
                pipe.delete(key)
            # redis-py's `mapping` has a union key type, which dict[str, str] cannot match
            # (dict keys are invariant). The label is always a field, so it is never empty.
            pipe.hset(key, mapping={**fields, "label": label})  # type: ignore[dict-item]
            pipe.set(function_key(t, label), function)
            pipe.sadd(index_key(t), label)
            pipe.sadd(keys.record_owners(kind), t)
            pipe.execute()
        return True

    def record(self, t: str, kind: RecordKind, label: str) -> dict[str, str] | None:
        """A record's fields, None if absent."""
        with store_errors(f"reading a {kind} record"):
            raw = self.redis.hgetall(_KEYS[kind][0](t, label))
        return {as_text(k): as_text(v) for k, v in raw.items()} if raw else None

    def record_function(self, t: str, kind: RecordKind, label: str) -> bytes | None:
        """A record's sealed function."""
        with store_errors(f"reading a {kind} function"):
            return as_blob(self.redis.get(_KEYS[kind][1](t, label)))

    def update_record(self, t: str, kind: RecordKind, label: str, fields: dict[str, str]) -> None:
        """Merge fields into an existing record (no-op if it is gone)."""
        key = _KEYS[kind][0](t, label)
        if not fields:
            return
        with store_errors(f"updating a {kind} record"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.exists(key)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # as in save_record
            existed, _ = pipe.execute()
            if not existed:  # deleted meanwhile: do not resurrect a partial record
                self.redis.delete(key)

    def delete_record(self, t: str, kind: RecordKind, label: str) -> bool:
        """Remove a record and its function; False if there was none."""
        record_key, function_key, index_key = _KEYS[kind]
        with store_errors(f"removing a {kind} record"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(record_key(t, label), function_key(t, label))
            pipe.srem(index_key(t), label)
            pipe.scard(index_key(t))
            removed, _, left = pipe.execute()
            if not left:  # its last record of this kind: no longer an owner
                self.redis.srem(keys.record_owners(kind), t)
        return bool(removed)

    def record_labels(self, t: str, kind: RecordKind) -> list[str]:
        """Labels of the tenant's records of `kind`, sorted."""
        with store_errors(f"listing {kind} records"):
            return sorted(as_text(x) for x in self.redis.smembers(_KEYS[kind][2](t)))

    def record_owners(self, kind: RecordKind) -> list[str]:
        """Tenants that have saved records of `kind`."""
        with store_errors(f"listing {kind} owners"):
            return sorted(as_text(x) for x in self.redis.smembers(keys.record_owners(kind)))

    def claim_once(self, t: str, name: str, ttl: float) -> bool:
        """True for the first caller naming `name` within `ttl` seconds."""
        with store_errors("claiming a one-off marker"):
            ttl_ms = max(1, int(ttl * 1000))
            return bool(self.redis.set(keys.once(t, name), 1, nx=True, px=ttl_ms))

    # -- accounts ----------------------------------------------------------------------

    def create_account(self, secret_hash: str, note: str, created: float) -> str:
        """A new active API key with the given secret hash."""
        with store_errors("creating an API key"):
            api_key = str(FIRST_ACCOUNT + int(self.redis.incr(keys.ACCOUNT_SEQ)))
            doc = {"secret": secret_hash, "active": True, "created": created, "note": note}
            self.redis.hset(keys.ACCOUNTS, api_key, json.dumps(doc))
        return api_key

    def account(self, api_key: str) -> Account | None:
        """One API key, None if it does not exist."""
        with store_errors("reading an API key"):
            raw = self.redis.hget(keys.ACCOUNTS, api_key)
        return None if raw is None else _account(api_key, raw)

    def accounts(self) -> list[Account]:
        """Every API key, by number."""
        with store_errors("listing API keys"):
            raw = self.redis.hgetall(keys.ACCOUNTS)
        out = [_account(as_text(k), v) for k, v in raw.items()]
        return sorted(out, key=lambda a: int(a.api_key) if a.api_key.isdigit() else 0)

    def usage(self, t: str) -> dict[str, tuple[int, float]]:
        """{UTC day: (jobs, CPU seconds)} (kept as ``<day>:jobs`` and ``<day>:cpu``)."""
        with store_errors("reading usage"):
            raw = self.redis.hgetall(keys.usage(t))
        return _usage_by_day({as_text(k): as_text(v) for k, v in raw.items()})

    def set_account_active(self, api_key: str, active: bool) -> bool:
        """(De)activate a key; the inactive set is what the Lua scripts check."""
        current = self.account(api_key)
        if current is None:
            return False
        doc = {
            "secret": current.secret_hash,
            "active": active,
            "created": current.created,
            "note": current.note,
        }
        with store_errors("updating an API key"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(keys.ACCOUNTS, api_key, json.dumps(doc))
            if active:
                pipe.srem(keys.INACTIVE_TENANTS, api_key)
            else:
                pipe.sadd(keys.INACTIVE_TENANTS, api_key)
            pipe.execute()
        return True


def _account(api_key: str, raw: bytes | str) -> Account:
    doc = json.loads(raw)
    return Account(
        api_key,
        str(doc.get("secret", "")),
        bool(doc.get("active", True)),
        float(doc.get("created", 0)),
        str(doc.get("note", "")),
    )


def _usage_by_day(fields: dict[str, str]) -> dict[str, tuple[int, float]]:
    days: dict[str, tuple[int, float]] = {}
    for name, value in fields.items():
        day, _, what = name.rpartition(":")
        jobs, cpu = days.get(day, (0, 0.0))
        days[day] = (int(value), cpu) if what == "jobs" else (jobs, float(value))
    return dict(sorted(days.items()))
