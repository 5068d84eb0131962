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

from picloud_compat.commands.environments import env
from picloud_compat.commands.output import (
    EXIT_CLOUD_EXCEPTION,
    EXIT_ERROR,
    EXIT_OK,
    JIDS,
    emit,
)
from picloud_compat.commands.services import cron, files, rest

SERVER_COMMANDS = {"worker": "worker", "beat": "beat", "gateway": "gateway", "exporter": "exporter"}
"""Commands that start server processes, imported only when invoked (`workers.cli`)."""
ADMIN_COMMANDS = {"keys": "keys", "usage": "usage"}
"""The administrator's commands, imported only when invoked (`commands.keys`)."""


class _CloudCommands(click.Group):
    """The ``picloud`` group; server and admin commands load lazily, so client commands
    never import Celery's worker machinery."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SERVER_COMMANDS, *ADMIN_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command: click.Command
        if name in SERVER_COMMANDS:
            from picloud_compat.workers import cli as server_cli

            command = getattr(server_cli, SERVER_COMMANDS[name])
            return command
        if name in ADMIN_COMMANDS:
            from picloud_compat.commands import keys as admin_commands

            command = getattr(admin_commands, ADMIN_COMMANDS[name])
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
@click.option("--tenant-key", help="the key's own signing key (from `picloud keys create`)")
@click.option("--signing-key", help="the cluster's shared secret (trusted teams only)")
@click.option("--simulator", is_flag=True, help="use the local simulator")
def setup(
    api_key: str | None,
    api_secretkey: str | None,
    server_url: str | None,
    tenant_key: str | None,
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
        "tenant_key": tenant_key,
        "signing_key": signing_key,
        "use_simulator": simulator or None,
    }
    values.update({k: v for k, v in updates.items() if v is not None})
    s.write_cloudconf(path, values)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("jids", type=JIDS, required=False)
@click.pass_context
def status(ctx: click.Context, jids: list[int] | None) -> None:
    """Status of jobs; without JIDS, which compute types live workers serve."""
    import cloud

    if not jids:
        from picloud_compat.client.session import get_client

        client = get_client()
        served = client.services()
        prebuilt = {t: client.prebuilt(s) for t, s in served.items()}
        emit(
            ctx,
            {
                t: {
                    "processes": s.processes,
                    "runtimes": list(s.runtimes),
                    "prebuilt_environments": prebuilt[t],
                }
                for t, s in served.items()
            },
            "\n".join(
                f"{t}\t{s.processes} processes ({', '.join(s.runtimes) or '-'})"
                + (f"; environments built: {', '.join(prebuilt[t])}" if prebuilt[t] else "")
                if s.processes
                else f"{t}\tno live workers: jobs of this type wait"
                for t, s in served.items()
            ),
        )
        return
    statuses = cloud.status(jids)
    emit(
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
        emit(ctx, {j: _printable(v) for j, v in zip(jids, values, strict=True)})
    elif len(jids) == 1 and isinstance(values[0], str):
        click.echo(values[0])
    else:
        for jid, value in zip(jids, values, strict=True):
            click.echo(f"{jid}\t{json.dumps(_printable(value), default=str)}")


def _gather(jids: list[int], timeout: float | None, ignore_errors: bool) -> list[Any]:
    """Results in order; `iresult` shows its progress bar on a terminal."""
    import cloud

    return list(cloud.iresult(jids, timeout=timeout, ignore_errors=ignore_errors))


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
        emit(ctx, data)
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
    emit(ctx, jids, "\n".join(map(str, jids)))


cli.add_command(files)
cli.add_command(cron)
cli.add_command(rest)
cli.add_command(env)


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
