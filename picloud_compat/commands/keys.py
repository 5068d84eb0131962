"""``picloud keys``: the administrator's commands for API keys (tenants).

They act on the cluster's store directly (``PICLOUD_SERVER_URL`` and the signing key,
which peppers the stored secret hashes), so they run where the operator keeps those;
no API key is needed. A new key's secret is printed once and cannot be shown again.
"""

from __future__ import annotations

import datetime as dt
import json

import click

from picloud_compat.accounts import AccountRegistry, ApiKey
from picloud_compat.errors import ConfigurationError
from picloud_compat.settings import Settings


def _registry() -> AccountRegistry:
    settings = Settings.load()
    if not settings.server_url:
        raise ConfigurationError("picloud keys needs the cluster: set PICLOUD_SERVER_URL")
    if not settings.signing_key:
        raise ConfigurationError("picloud keys needs the cluster's PICLOUD_SIGNING_KEY")
    from picloud_compat.store.redis import RedisStore

    return AccountRegistry(RedisStore.from_url(settings.server_url, settings), settings)


def _as_json(ctx: click.Context) -> bool:
    parent = ctx.find_root()
    return bool(parent.obj and parent.obj.get("json"))


def _describe(key: ApiKey) -> str:
    created = dt.datetime.fromtimestamp(key.created, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = "active" if key.active else "deactivated"
    note = f"  {key.note}" if key.note else ""
    return f"{key.api_key}  {state:<11}  created {created}{note}"


@click.group("keys")
def keys() -> None:
    """Administer API keys (each key is a tenant with its own jobs and files)."""


@keys.command("create")
@click.option("--note", default="", help="who or what the key is for")
@click.pass_context
def create(ctx: click.Context, note: str) -> None:
    """Create an active key and print its secret (shown only this once)."""
    registry = _registry()
    api_key, secret = registry.create_key(note)
    tenant = registry.tenant_key(api_key)
    if _as_json(ctx):
        click.echo(
            json.dumps(
                {"api_key": api_key, "api_secretkey": secret, "tenant_key": tenant, "note": note}
            )
        )
    else:
        click.echo(f"api_key:       {api_key}\napi_secretkey: {secret}\ntenant_key:    {tenant}")
        click.echo(
            "The secret is not stored and cannot be shown again. Give clients the three values "
            "(PICLOUD_API_KEY, PICLOUD_API_SECRETKEY, PICLOUD_TENANT_KEY), never the cluster's "
            "signing key.",
            err=True,
        )


@keys.command("list")
@click.option("--active", "active_only", is_flag=True, help="only active keys")
@click.pass_context
def list_keys(ctx: click.Context, active_only: bool) -> None:
    """List keys with their state, creation time and note."""
    found = _registry().list_keys(active_only)
    if _as_json(ctx):
        click.echo(json.dumps([k.as_dict() for k in found]))
    else:
        for key in found:
            click.echo(_describe(key))


@keys.command("info")
@click.argument("api_key")
@click.pass_context
def info(ctx: click.Context, api_key: str) -> None:
    """Show one key (never its secret)."""
    key = _registry().get_key(api_key)
    click.echo(json.dumps(key.as_dict()) if _as_json(ctx) else _describe(key))


@keys.command("tenant-key")
@click.argument("api_key")
def show_tenant_key(api_key: str) -> None:
    """Print the key's tenant signing key (for a client that must not hold the cluster's)."""
    click.echo(_registry().tenant_key(api_key))


@keys.command("deactivate")
@click.argument("api_key")
def deactivate(api_key: str) -> None:
    """Refuse the key everywhere: setkey, the gateway, new jobs, and its queued jobs."""
    _registry().set_active(api_key, False)
    click.echo(f"{api_key} deactivated")


@keys.command("activate")
@click.argument("api_key")
def activate(api_key: str) -> None:
    """Accept a deactivated key again."""
    _registry().set_active(api_key, True)
    click.echo(f"{api_key} activated")


@click.command("usage")
@click.argument("api_keys", nargs=-1)
@click.option("--days", default=7, show_default=True, type=int, help="how many recent days")
@click.pass_context
def usage(ctx: click.Context, api_keys: tuple[str, ...], days: int) -> None:
    """Jobs and CPU seconds per API key and UTC day (all keys unless some are named)."""
    registry = _registry()
    wanted = list(api_keys) or [k.api_key for k in registry.list_keys()]
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days - 1)).strftime("%Y-%m-%d")
    table = {
        key: {day: v for day, v in registry.store.usage(key).items() if day >= since}
        for key in wanted
    }
    if _as_json(ctx):
        click.echo(
            json.dumps(
                {
                    key: {
                        day: {"jobs": j, "cpu_seconds": round(c, 3)} for day, (j, c) in rows.items()
                    }
                    for key, rows in table.items()
                }
            )
        )
        return
    for key, rows in table.items():
        for day, (jobs, cpu) in rows.items():
            click.echo(f"{key}\t{day}\t{jobs} jobs\t{cpu:.1f} CPU s")
        if not rows:
            click.echo(f"{key}\t-\tno jobs in the last {days} days")
