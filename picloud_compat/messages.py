"""Celery task messages for chunks, written straight onto kombu's Redis lists.

Publishing through kombu costs ~1 ms per message on the client (feasibility.md T5),
which alone would miss the latency target. A chunk's message is therefore built here
from a template and pushed by the job store's Lua scripts in the same atomic step that
creates the jobs. The format is kombu 5.7's Redis transport envelope around a Celery
protocol-2 message; the body is plain JSON, which kombu passes through because no
``body_encoding`` is set. `tests/integration/test_messages.py` checks that a real
worker runs these messages, so a kombu upgrade that changes the format fails loudly.

Placeholders, filled in by the store: ``@JID@`` (first jid, known only once allocated)
and ``@TAG@`` (a delivery tag unique to each publication of the chunk).
"""

from __future__ import annotations

import functools
import json
import os
import socket

from picloud_compat.config.compute_types import priority_step

TASK_NAME = "picloud.run_chunk"
FIRE_TASK = "picloud.cron_fire"
"""Beat's task for a cron firing (`tasks.cron`)."""
JID = "@JID@"
TAG = "@TAG@"
_ORIGIN = f"picloud@{socket.gethostname()}"


def task_id(tenant: str, first: int | str, count: int) -> str:
    """Celery task id naming the chunk, so workers and logs can tell chunks apart."""
    return f"{tenant}.{first}.{count}"


@functools.lru_cache(maxsize=256)
def chunk_template(
    tenant: str,
    count: int,
    queue: str,
    priority: int,
    display_name: str,
    label: str | None,
    env: str | None = None,
) -> str:
    """A message for the chunk (tenant, @JID@, count), with placeholders left in; jobs
    of an environment name it (``"e"``), so a worker routes them without a read. Kept
    for the next submit alike (a loop of `call`s makes the same one each time); a forked
    child forgets them, since they name the sending process."""
    extra = f', "e": {json.dumps(env)}' if env else ""
    spec = f'{{"t": {json.dumps(tenant)}, "j": {JID}, "n": {count}{extra}}}'
    body = (
        f'[[{spec}], {{}}, {{"callbacks": null, "errbacks": null, "chain": null, "chord": null}}]'
    )
    tid = task_id(tenant, JID, count)
    shadow = display_name if not label else f"{display_name} [{label}]"
    if count > 1:
        shadow += f" x{count}"
    argsrepr = f"(jids {JID}..+{count - 1})" if count > 1 else f"(jid {JID})"
    headers = {
        "lang": "py",
        "task": TASK_NAME,
        "id": tid,
        "shadow": shadow,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": tid,
        "parent_id": None,
        "argsrepr": argsrepr,
        "kwargsrepr": "{}",
        "origin": f"{_ORIGIN}:{os.getpid()}",
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties = {
        "correlation_id": tid,
        "reply_to": "",
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": priority_step(priority),
        "delivery_tag": TAG,
    }
    envelope = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": properties,
    }
    return json.dumps(envelope)


os.register_at_fork(after_in_child=chunk_template.cache_clear)


def fill(template: str, first: int, tag: str | None = None) -> str:
    """The template with the first jid (and optionally the tag) substituted."""
    out = template.replace(JID, str(first))
    return out if tag is None else out.replace(TAG, tag)


def delivery_tag(chunk_key: str, generation: int) -> str:
    """The tag of a chunk's nth publication; matches lib.lua, so supervision can find it queued."""
    return f"{chunk_key}#{generation}"


def parse_body(args: list) -> tuple[str, int, int]:
    """(tenant, first, count) from the task's positional arguments."""
    spec = args[0]
    return str(spec["t"]), int(spec["j"]), int(spec["n"])


def body_env(args: list) -> str | None:
    """The environment a chunk's jobs run in (None: the worker's own)."""
    env = args[0].get("e") if isinstance(args[0], dict) else None
    return str(env) if env else None
