"""The ``picloud`` command.

Exit codes: 0 success; 1 usage error or unexpected failure; 3 a `CloudException`
(printed to stderr), as in PiCloud's CLI. Jids are written ``1,3,5-9`` (ranges
inclusive). ``-o json`` prints machine-readable output.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CLOUD_EXCEPTION = 3


def parse_jids(text: str) -> list[int]:
    """'1,3,5-9' -> [1, 3, 5, 6, 7, 8, 9] (ranges inclusive, as in PiCloud's CLI)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            if sep:
                lo, hi = int(first), int(last)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(first))
        except ValueError:
            raise click.BadParameter(f"{part!r} is not a jid or an inclusive range a-b") from None
    if not out:
        raise click.BadParameter("no jids given")
    return out


class Jids(click.ParamType):
    """Click argument type for jid lists written like ``1,3,5-9``."""

    name = "JIDS"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int]:
        """Parse the text (or pass through an already-parsed list, e.g. a default)."""
        return value if isinstance(value, list) else parse_jids(str(value))


JIDS = Jids()


def _emit(ctx: click.Context, value: Any, text: str | None = None) -> None:
    if ctx.obj.get("json"):
        click.echo(json.dumps(value, default=str))
    elif text is not None:
        click.echo(text)


SERVER_COMMANDS = {"worker": "worker", "beat": "beat", "gateway": "gateway"}
"""Commands that start server processes, imported only when invoked (`workers.cli`)."""


class _CloudCommands(click.Group):
    """The ``picloud`` group; server commands load ``picloud_compat.workers`` lazily,
    so client commands never import Celery's worker machinery."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SERVER_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SERVER_COMMANDS:
            from picloud_compat.workers import cli as server_cli

            command: click.Command = getattr(server_cli, SERVER_COMMANDS[name])
            return command
        return super().get_command(ctx, name)


@click.group(cls=_CloudCommands)
@click.version_option(package_name="picloud-compat")
@click.option("-o", "--output", type=click.Choice(["default", "json"]), default="default")
@click.pass_context
def cli(ctx: click.Context, output: str) -> None:
    """PiCloud-compatible job platform on Celery + Redis (or the local simulator)."""
    ctx.ensure_object(dict)
    ctx.obj["json"] = output == "json"


@cli.command()
@click.option("--api-key", help="API key (omit for the local simulator)")
@click.option("--api-secretkey", help="the key's secret")
@click.option("--server-url", help="the cluster's Redis, e.g. redis://10.0.0.5:6379/0")
@click.option("--signing-key", help="the cluster's shared signing key")
@click.option("--simulator", is_flag=True, help="use the local simulator")
def setup(
    api_key: str | None,
    api_secretkey: str | None,
    server_url: str | None,
    signing_key: str | None,
    simulator: bool,
) -> None:
    """Write cloudconf.py in the config directory (mode 0600)."""
    from pathlib import Path

    from picloud_compat import settings as s

    path = Path(s.getconfigpath()) / s.CONFIG_FILENAME
    values = s.read_cloudconf(path)
    updates = {
        "api_key": api_key,
        "api_secretkey": api_secretkey,
        "server_url": server_url,
        "signing_key": signing_key,
        "use_simulator": simulator or None,
    }
    values.update({k: v for k, v in updates.items() if v is not None})
    s.write_cloudconf(path, values)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("jids", type=JIDS)
@click.pass_context
def status(ctx: click.Context, jids: list[int]) -> None:
    """Status of jobs."""
    import cloud

    statuses = cloud.status(jids)
    _emit(
        ctx,
        dict(zip(jids, statuses, strict=True)),
        "\n".join(f"{j}\t{s}" for j, s in zip(jids, statuses, strict=True)),
    )


@cli.command()
@click.argument("jids", type=JIDS)
@click.option("-t", "--timeout", type=float, help="seconds to wait")
@click.option("-i", "--ignore-errors", is_flag=True)
@click.pass_context
def result(ctx: click.Context, jids: list[int], timeout: float | None, ignore_errors: bool) -> None:
    """Wait for jobs and print their results (a progress bar shows on a terminal)."""
    values = _gather(jids, timeout, ignore_errors)
    if ctx.obj.get("json"):
        _emit(ctx, {j: _printable(v) for j, v in zip(jids, values, strict=True)})
    elif len(jids) == 1 and isinstance(values[0], str):
        click.echo(values[0])
    else:
        for jid, value in zip(jids, values, strict=True):
            click.echo(f"{jid}\t{json.dumps(_printable(value), default=str)}")


def _gather(jids: list[int], timeout: float | None, ignore_errors: bool) -> list[Any]:
    from tqdm import tqdm

    import cloud

    values = []
    with tqdm(total=len(jids), unit="job", disable=not sys.stderr.isatty(), leave=False) as bar:
        for value in cloud.iresult(jids, timeout=timeout, ignore_errors=ignore_errors):
            values.append(value)
            bar.update()
    return values


def _printable(value: Any) -> Any:
    from picloud_compat.errors import CloudException

    if isinstance(value, CloudException):
        return f"CloudException: {value}"
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


@cli.command()
@click.argument("jids", type=JIDS)
@click.option("-t", "--timeout", type=float)
def join(jids: list[int], timeout: float | None) -> None:
    """Wait until jobs finish (exit 3 if one failed)."""
    _gather(jids, timeout, ignore_errors=False)


@cli.command()
@click.argument("jids", type=JIDS)
@click.option(
    "-f",
    "--fields",
    default="status,runtime,stdout,stderr",
    help="comma-separated info fields ('all' for every field)",
)
@click.pass_context
def info(ctx: click.Context, jids: list[int], fields: str) -> None:
    """Information about jobs."""
    import cloud

    data = cloud.info(jids, [f for f in fields.split(",") if f])
    if ctx.obj.get("json"):
        _emit(ctx, data)
        return
    for jid, entry in data.items():
        click.echo(f"job {jid}")
        for key, value in entry.items():
            click.echo(f"  {key}: {value}")


@cli.command()
@click.argument("jids", type=JIDS, required=False)
def kill(jids: list[int] | None) -> None:
    """Kill jobs (all unfinished jobs of this API key if none are given)."""
    import cloud

    cloud.kill(jids)


@cli.command()
@click.argument("jids", type=JIDS)
def delete(jids: list[int]) -> None:
    """Delete finished jobs' data."""
    import cloud

    cloud.delete(jids)


@cli.command("list")
@click.option("--label", help="only jobs with this label")
@click.option("--status", "status_", help="only jobs with this status")
@click.pass_context
def list_jobs(ctx: click.Context, label: str | None, status_: str | None) -> None:
    """List this API key's jobs."""
    from picloud_compat.client.session import get_client

    jids = get_client().list_jobs(label=label, status=status_)
    _emit(ctx, jids, "\n".join(map(str, jids)))


# -- files ------------------------------------------------------------------------------


@cli.group()
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
    _emit(ctx, names, "\n".join(names))


@files.command("delete")
@click.argument("name")
def files_delete(name: str) -> None:
    """Delete cloud file NAME (fails if there is no such file)."""
    import cloud

    if not cloud.files.delete(name):
        raise click.ClickException(f"no file {name!r}")


# -- cron -------------------------------------------------------------------------------


@cli.group()
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
    _emit(ctx, labels, "\n".join(labels))


@cron.command("info")
@click.argument("label")
@click.pass_context
def cron_info(ctx: click.Context, label: str) -> None:
    """Show a registered cron's schedule and details."""
    import cloud

    data = cloud.cron.info(label)
    _emit(ctx, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


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


@cli.group()
def rest() -> None:
    """cloud.rest: published functions."""


@rest.command("list")
@click.pass_context
def rest_list(ctx: click.Context) -> None:
    """List the labels of published functions."""
    import cloud

    labels = cloud.rest.list()
    _emit(ctx, labels, "\n".join(labels))


@rest.command("info")
@click.argument("label")
@click.pass_context
def rest_info(ctx: click.Context, label: str) -> None:
    """Show a published function's URL, signature and description."""
    import cloud

    data = cloud.rest.info(label)
    _emit(ctx, data, json.dumps(data, indent=2))


def main() -> None:
    """Console entry point: run the CLI and map errors to PiCloud's exit codes."""
    from picloud_compat.errors import CloudException

    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR)
    except CloudException as exc:
        click.echo(f"CloudException: {exc}", err=True)
        sys.exit(EXIT_CLOUD_EXCEPTION)
    except (TypeError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
