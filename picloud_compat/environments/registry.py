"""A tenant's environments: created, listed, described and deleted through the store.

They are records of kind ``env`` (like crons and REST endpoints), so they work the same
on the simulator, on a team cluster and through the gateway.
"""

from __future__ import annotations

import time
from typing import Any

from picloud_compat.environments.spec import EnvSpec, checked_name, checked_requirements
from picloud_compat.errors import CloudException
from picloud_compat.store.contract import RecordStore


class UnknownEnvironment(CloudException, ValueError):
    """No environment of that name for this API key (a ValueError too: it is refused at
    submit, where bad reserved arguments raise ValueError)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no environment named {name!r} (cloud.environment.list_envs() lists them; "
            "create one with cloud.environment.create(name, requirements=[...]) or "
            "`picloud env create`)",
            status=404,
        )


class EnvRegistry:
    """One API key's environments."""

    def __init__(self, store: RecordStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant

    def create(
        self, name: str, requirements: Any, description: str = "", replace: bool = False
    ) -> EnvSpec:
        """Save an environment; ValueError if it exists (unless `replace`) or is bad."""
        if isinstance(requirements, str):
            requirements = requirements.splitlines()
        spec = EnvSpec(
            checked_name(name), checked_requirements(requirements), str(description), time.time()
        )
        if not self.store.save_record(self.tenant, "env", name, spec.as_record(), b"", replace):
            raise ValueError(f"an environment named {name!r} already exists; delete it first")
        return spec

    def get(self, name: str) -> EnvSpec:
        """The environment `name`; UnknownEnvironment if there is none."""
        record = self.store.record(self.tenant, "env", checked_name(name))
        if record is None:
            raise UnknownEnvironment(name)
        return EnvSpec.from_record(name, record)

    def names(self) -> list[str]:
        """This key's environment names, sorted."""
        return self.store.record_labels(self.tenant, "env")

    def delete(self, name: str) -> None:
        """Remove an environment (builds on workers stay cached by digest)."""
        if not self.store.delete_record(self.tenant, "env", checked_name(name)):
            raise UnknownEnvironment(name)


class KnownEnvironments:
    """What a client checks at submit: a job naming an environment its key does not have
    is refused then, not failed later on a worker. Answers are trusted for 30 s."""

    def __init__(self, store: RecordStore, tenant: str) -> None:
        self._registry = EnvRegistry(store, tenant)
        self._seen: dict[str, float] = {}

    def check(self, name: str) -> None:
        """UnknownEnvironment unless the key has environment `name`."""
        now = time.monotonic()
        if now - self._seen.get(name, -RECHECK_AFTER) < RECHECK_AFTER:
            return
        self._registry.get(name)
        self._seen[name] = now


RECHECK_AFTER = 30.0
