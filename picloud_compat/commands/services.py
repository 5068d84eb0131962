"""`picloud files|cron|rest`: the services' commands (each acts as the configured key)."""

from __future__ import annotations

import json

import click

from picloud_compat.commands.output import emit

# -- files ------------------------------------------------------------------------------


@click.group()
def files() -> None:
    """cloud.files: this API key's stored files."""


@files.command("put")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("name", required=False)
def files_put(source: str, name: str | None) -> None:
    """Upload local file SOURCE to cloud.files. Stored as NAME (default: its base name)."""
    import cloud

    click.echo(cloud.files.put(source, name))


@files.command("get")
@click.argument("name")
@click.argument("destination", required=False)
def files_get(name: str, destination: str | None) -> None:
    """Download cloud file NAME. Saved as DESTINATION (default: its base name here)."""
    import cloud

    click.echo(cloud.files.get(name, destination))


@files.command("list")
@click.argument("prefix", required=False)
@click.pass_context
def files_list(ctx: click.Context, prefix: str | None) -> None:
    """List stored file names. Only those starting with PREFIX, if given."""
    import cloud

    names = cloud.files.list(prefix)
    emit(ctx, names, "\n".join(names))


@files.command("delete")
@click.argument("name")
def files_delete(name: str) -> None:
    """Delete cloud file NAME (fails if there is no such file)."""
    import cloud

    if not cloud.files.delete(name):
        raise click.ClickException(f"no file {name!r}")


# -- cron -------------------------------------------------------------------------------


@click.group()
def cron() -> None:
    """cloud.cron: scheduled jobs (needs `picloud beat` on the cluster)."""


@cron.command("register")
@click.argument("label")
@click.argument("schedule")
@click.argument("command", nargs=-1, required=True)
def cron_register(label: str, schedule: str, command: tuple[str, ...]) -> None:
    """Run a shell COMMAND on SCHEDULE ('min hour day month weekday', UTC)."""
    import cloud
    from picloud_compat.shell import ShellCommand

    cloud.cron.register(ShellCommand(" ".join(command)), label, schedule)
    click.echo(label)


@cron.command("list")
@click.pass_context
def cron_list(ctx: click.Context) -> None:
    """List the labels of registered crons."""
    import cloud

    labels = cloud.cron.list()
    emit(ctx, labels, "\n".join(labels))


@cron.command("info")
@click.argument("label")
@click.pass_context
def cron_info(ctx: click.Context, label: str) -> None:
    """Show a registered cron's schedule and details."""
    import cloud

    data = cloud.cron.info(label)
    emit(ctx, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


@cron.command("deregister")
@click.argument("label")
def cron_deregister(label: str) -> None:
    """Stop and remove the cron LABEL."""
    import cloud

    cloud.cron.deregister(label)


@cron.command("run")
@click.argument("label")
def cron_run(label: str) -> None:
    """Run a cron now; prints the jid."""
    import cloud

    click.echo(cloud.cron.manual_run(label))


# -- rest -------------------------------------------------------------------------------


@click.group()
def rest() -> None:
    """cloud.rest: published functions."""


@rest.command("list")
@click.pass_context
def rest_list(ctx: click.Context) -> None:
    """List the labels of published functions."""
    import cloud

    labels = cloud.rest.list()
    emit(ctx, labels, "\n".join(labels))


@rest.command("info")
@click.argument("label")
@click.pass_context
def rest_info(ctx: click.Context, label: str) -> None:
    """Show a published function's URL, signature and description."""
    import cloud

    data = cloud.rest.info(label)
    emit(ctx, data, json.dumps(data, indent=2))
