"""`RecordStore` in memory: crons, REST endpoints and API keys for the simulator."""

from __future__ import annotations

import dataclasses
import time

from picloud_compat.store.memory.state import MemoryState
from picloud_compat.store.records import Account, RecordKind

FIRST_ACCOUNT = 1000


class MemoryRecords(MemoryState):
    """Named records with functions, plus accounts, under the store's lock."""

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
        key = (t, kind, label)
        with self._lock:
            if key in self._records and not replace:
                return False
            self._records[key] = {"label": label, **fields}
            self._record_functions[key] = bytes(function)
            return True

    def record(self, t: str, kind: RecordKind, label: str) -> dict[str, str] | None:
        """A record's fields, None if absent."""
        with self._lock:
            found = self._records.get((t, kind, label))
            return None if found is None else dict(found)

    def record_function(self, t: str, kind: RecordKind, label: str) -> bytes | None:
        """A record's sealed function."""
        with self._lock:
            return self._record_functions.get((t, kind, label))

    def update_record(self, t: str, kind: RecordKind, label: str, fields: dict[str, str]) -> None:
        """Merge fields into an existing record (no-op if it is gone)."""
        with self._lock:
            found = self._records.get((t, kind, label))
            if found is not None:
                found.update(fields)

    def delete_record(self, t: str, kind: RecordKind, label: str) -> bool:
        """Remove a record and its function; False if there was none."""
        with self._lock:
            self._record_functions.pop((t, kind, label), None)
            return self._records.pop((t, kind, label), None) is not None

    def record_labels(self, t: str, kind: RecordKind) -> list[str]:
        """Labels of the tenant's records of `kind`, sorted."""
        with self._lock:
            return sorted(lb for (tt, k, lb) in self._records if tt == t and k == kind)

    def record_owners(self, kind: RecordKind) -> list[str]:
        """Tenants having records of `kind`."""
        with self._lock:
            return sorted({tt for (tt, k, _) in self._records if k == kind})

    def claim_once(self, t: str, name: str, ttl: float) -> bool:
        """True for the first caller naming `name` within `ttl` seconds."""
        now = time.monotonic()
        with self._lock:
            expires = self._once.get((t, name))
            if expires is not None and expires > now:
                return False
            if len(self._once) >= 4096:  # a long-running script: forget expired markers
                self._once = {k: v for k, v in self._once.items() if v > now}
            self._once[(t, name)] = now + ttl
            return True

    def create_account(self, secret_hash: str, note: str, created: float) -> str:
        """A new active API key with the given secret hash."""
        with self._lock:
            api_key = str(FIRST_ACCOUNT + len(self._accounts) + 1)
            self._accounts[api_key] = Account(api_key, secret_hash, True, created, note)
            return api_key

    def account(self, api_key: str) -> Account | None:
        """One API key, None if it does not exist."""
        with self._lock:
            return self._accounts.get(api_key)

    def accounts(self) -> list[Account]:
        """Every API key, by number."""
        with self._lock:
            return sorted(self._accounts.values(), key=lambda a: int(a.api_key))

    def usage(self, t: str) -> dict[str, tuple[int, float]]:
        """{UTC day: (jobs, CPU seconds)}."""
        with self._lock:
            return dict(sorted(self._usage.get(t, {}).items()))

    def set_account_active(self, api_key: str, active: bool) -> bool:
        """(De)activate a key; submit and claim check it."""
        with self._lock:
            found = self._accounts.get(api_key)
            if found is None:
                return False
            self._accounts[api_key] = dataclasses.replace(found, active=active)
            return True
