"""Workers that serve prebuilt environments: ``picloud worker --env NAME``.

Any worker builds an environment on the first job that needs it, which costs that job
the build (seconds to minutes). Ops who know which environments a fleet runs start its
workers with ``--env``: the worker builds each one before it takes any job (or finds the
build already in ``env_dir``, baked into the machine image by the same command or by
``picloud env build``), refuses to start if one cannot be built, with the build's log,
and says in its registration which environments it has ready (``picloud status``).

An environment belongs to an API key: ``--env NAME`` is the configured key's
(``PICLOUD_API_KEY``), ``--env KEY:NAME`` names another's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from picloud_compat.environments.builder import env_builder
from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.environments.spec import checked_name
from picloud_compat.errors import ConfigurationError
from picloud_compat.settings import Settings
from picloud_compat.store.contract import RecordStore
from picloud_compat.tenancy import validate_tenant

PREBUILT_ENV = "PICLOUD_PREBUILT_ENVS"
"""Set by ``picloud worker --env`` for the worker it starts: the environments it built
(``KEY:NAME`` separated by commas), which its registrations name."""


def parse_reference(reference: str, settings: Settings) -> tuple[str, str]:
    """(API key, environment name) of ``NAME`` (the configured key's) or ``KEY:NAME``."""
    key, _, name = reference.rpartition(":")
    if not key:
        if not settings.api_key:
            raise ConfigurationError(
                f"--env {reference}: whose environment? Set PICLOUD_API_KEY, or write "
                f"--env KEY:{reference}"
            )
        key = str(settings.api_key)
    return validate_tenant(key), checked_name(name)


def prebuild(
    references: Sequence[str],
    settings: Settings,
    store: RecordStore,
    say: Callable[[str], object] = print,
) -> list[str]:
    """Build each environment named (or find its build), before the worker starts;
    the ``KEY:NAME`` list to register. UnknownEnvironment or EnvBuildFailed (with the
    build's log) for the first that cannot be served."""
    builder = env_builder(settings)
    ready = []
    for reference in references:
        tenant, name = parse_reference(reference, settings)
        spec = EnvRegistry(store, tenant).get(name)
        say(f"environment {tenant}:{name}: building (or finding) {spec.digest()[:12]}")
        python = builder.pin(spec)  # served by design: never evicted
        say(f"environment {tenant}:{name}: ready ({python})")
        ready.append(f"{tenant}:{name}")
    return ready


def registered(value: str | None) -> tuple[str, ...]:
    """The prebuilt environments a worker registers, from `PREBUILT_ENV`'s value."""
    return tuple(sorted({v for v in (value or "").split(",") if v}))
