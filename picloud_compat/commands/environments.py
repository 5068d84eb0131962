"""``picloud env``: environments (``_env``), as the configured key, and prebuilding them.

``create|list|info|delete`` act as the configured API key, like ``cloud.environment``.
``build`` is the operator's: it builds requirements into this host's environment cache
(``PICLOUD_ENV_DIR``), e.g. while baking a worker image, so no job waits for the build:
builds are found by the requirements' digest, whoever's environment lists them.
"""

from __future__ import annotations

from pathlib import Path

import click

from picloud_compat.commands.output import emit


def _read(requirements: str) -> list[str]:
    return Path(requirements).read_text().splitlines()


@click.group("env")
def env() -> None:
    """Environments that jobs run in (_env=NAME): pip requirements, built by workers."""


@env.command("create")
@click.argument("name")
@click.option("-r", "--requirements", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--description", default="", help="what it is for")
def create(name: str, requirements: str, description: str) -> None:
    """Define environment NAME from a requirements file (PEP 508 lines, no pip options)."""
    import cloud

    cloud.environment.create(name, requirements=_read(requirements), desc=description)
    click.echo(name)


@env.command("list")
@click.pass_context
def list_envs(ctx: click.Context) -> None:
    """This key's environments."""
    import cloud

    names = [e["name"] for e in cloud.environment.list_envs()]
    emit(ctx, names, "\n".join(names))


@env.command("info")
@click.argument("name")
@click.pass_context
def info(ctx: click.Context, name: str) -> None:
    """An environment's requirements and description."""
    import cloud

    (found,) = cloud.environment.list_envs(name)
    text = "\n".join([f"{name}: {found['description']}".rstrip(": "), *found["requirements"]])
    emit(ctx, {**found, "created": found["created"].isoformat()}, text)


@env.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Remove environment NAME."""
    import cloud

    cloud.environment.delete(name)


@env.command("build")
@click.option("-r", "--requirements", required=True, type=click.Path(exists=True, dir_okay=False))
def build(requirements: str) -> None:
    """Build requirements into this host's cache now (for worker images); prints the
    interpreter jobs of any environment with these requirements will run."""
    from picloud_compat.environments.builder import env_builder
    from picloud_compat.environments.spec import EnvSpec, checked_requirements
    from picloud_compat.settings import Settings

    spec = EnvSpec("prebuilt", checked_requirements(_read(requirements)))
    click.echo(env_builder(Settings.load()).pin(spec))  # baked into an image: kept
