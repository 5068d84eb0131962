"""The ``picloud`` command.

Exit codes: 0 success, 1 usage or unexpected error, 3 a `CloudException` (printed to
stderr), as in PiCloud's CLI.
"""

from __future__ import annotations

import sys

import click

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CLOUD_EXCEPTION = 3


@click.group()
@click.version_option(package_name="picloud-compat")
def cli() -> None:
    """PiCloud-compatible job platform on Celery + Redis."""


def _register_server_commands() -> None:
    from picloud_compat.workers.cli import beat, gateway, worker

    for command in (worker, beat, gateway):
        cli.add_command(command)


_register_server_commands()


def main() -> None:
    from picloud_compat.errors import CloudException

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_ERROR if exc.exit_code != 0 else EXIT_OK)
    except CloudException as exc:
        click.echo(f"CloudException: {exc}", err=True)
        sys.exit(EXIT_CLOUD_EXCEPTION)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
