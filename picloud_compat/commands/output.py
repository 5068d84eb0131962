"""What every `picloud` command shares: jid lists, exit codes, and printing results."""

from __future__ import annotations

import json
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


def emit(ctx: click.Context, value: Any, text: str | None = None) -> None:
    """Print `value` as JSON under ``-o json``, else `text` (if any) for people."""
    if ctx.obj.get("json"):
        click.echo(json.dumps(value, default=str))
    elif text is not None:
        click.echo(text)
