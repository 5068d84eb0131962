"""``cloud.environment``: environments that jobs run in (``_env=NAME``).

PiCloud's environments were machine images set up over ssh; here an environment is a
list of pip requirements (as Ray's ``runtime_env`` and Modal's ``Image.pip_install``),
built by each worker on first use and cached. So ``create`` takes ``requirements``, and
the image-editing calls (``modify``, ``save``, ``ssh``, ...) say they do not apply.
The simulator builds and runs them the same way, on this machine.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from picloud_compat.client.session import get_client
from picloud_compat.environments.registry import EnvRegistry
from picloud_compat.environments.spec import EnvSpec
from picloud_compat.errors import CloudException

__all__ = ["clone", "create", "delete", "edit_info", "list_bases", "list_envs"]

BASE = "python3.11"


def _registry() -> EnvRegistry:
    client = get_client()
    return EnvRegistry(client.store, client.tenant)


def create(
    name: str,
    base: str | None = None,
    desc: str | None = None,
    requirements: Any = None,
) -> str:
    """Define environment `name` from pip `requirements` (a list of lines, or the text
    of a requirements.txt); jobs use it with ``_env=name``. Returns the name."""
    if base not in (None, BASE):
        raise ValueError(f"base {base!r}: the only base is {BASE!r} (the workers' Python)")
    if requirements is None:
        raise ValueError(
            "environments here are pip requirements: "
            "cloud.environment.create(name, requirements=['pkg==1.0', ...])"
        )
    _registry().create(name, requirements, desc or "")
    return name


def list_envs(name: str | None = None) -> list[dict[str, Any]]:
    """This key's environments (or just `name`), as PiCloud listed them, plus their
    requirements."""
    registry = _registry()
    names = [name] if name is not None else registry.names()
    return [_describe(registry.get(n)) for n in names]


def list_bases() -> list[str]:
    """The interpreters environments are built on."""
    return [BASE]


def delete(name: str) -> None:
    """Remove environment `name` (jobs already queued with it then fail clearly)."""
    _registry().delete(name)


def edit_info(name: str, new_name: str | None = None, new_desc: str | None = None) -> None:
    """Rename an environment or change its description."""
    registry = _registry()
    spec = registry.get(name)
    target = new_name or name
    registry.create(target, list(spec.requirements), new_desc or spec.description, replace=True)
    if target != name:
        registry.delete(name)


def clone(parent_name: str, new_name: str | None = None, new_desc: str | None = None) -> str:
    """A copy of `parent_name` under `new_name` (default: ``<parent>_clone``)."""
    registry = _registry()
    spec = registry.get(parent_name)
    target = new_name or f"{parent_name}_clone"
    registry.create(target, list(spec.requirements), new_desc or spec.description)
    return target


def _describe(spec: EnvSpec) -> dict[str, Any]:
    created = dt.datetime.fromtimestamp(spec.created, dt.UTC)
    return {
        "name": spec.name,
        "status": "defined",  # built by each worker on first use
        "action": "none",
        "created": created,
        "last_modified": created,
        "requirements": list(spec.requirements),
        "description": spec.description,
    }


def _image_only(*_: Any, **__: Any) -> NoReturn:
    raise CloudException(
        "environments here are built from pip requirements, not edited as machine images: "
        "use cloud.environment.create(name, requirements=[...])"
    )


modify = save = save_shutdown = shutdown = ssh = rsync = run_script = _image_only
get_setup_hostname = get_key_path = _image_only
