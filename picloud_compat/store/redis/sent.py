"""A script call sent now whose reply is read later: the runner's claim-ahead.

A job process that runs slow jobs one after another sends "record this outcome, claim
the next job" as its next job starts, and reads the reply when that job ends, so it
never waits a round trip between jobs. The call holds one pooled connection from send
to reply; nothing else uses that connection meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import msgpack
import redis
import redis.exceptions as rexc
from redis.commands.core import Script

from picloud_compat.store.redis import scripts
from picloud_compat.store.redis.arguments import ScriptArgs
from picloud_compat.store.redis.connection import store_errors

T = TypeVar("T")


class SentScript(Generic[T]):
    """One EVALSHA on a connection of its own; `result` reads and converts its reply."""

    def __init__(
        self,
        client: redis.Redis,
        script: Script,
        record: ScriptArgs,
        rest: Sequence[Any],
        convert: Callable[[Any], T],
        what: str,
    ) -> None:
        """Send the call (ConnectionFailed if that fails: nothing was sent then, or the
        script ran and a plain retry of the same step is safe)."""
        self._client = client
        self._script = script
        self._pool = client.connection_pool
        self._convert = convert
        self._what = what
        args = [msgpack.packb(record, use_bin_type=False), *rest]
        with store_errors(what):
            self._conn: Any = self._pool.get_connection()
            try:
                self._conn.send_command("EVALSHA", script.sha, 0, *args)  # type: ignore[no-untyped-call]
            except BaseException:
                self._release(broken=True)
                raise

    def result(self) -> T:
        """The reply, converted; refusals and outages raise as a direct call would (a
        script the server does not know, e.g. after a restart, is an outage here: the
        caller retries the step the direct way, which loads it)."""
        if self._conn is None:
            raise RuntimeError("the reply was read already")
        broken = True
        try:
            with store_errors(self._what):
                try:
                    reply = self._conn.read_response()
                except rexc.NoScriptError as exc:
                    broken = False
                    self._release(broken)
                    self._client.script_load(self._script.script)  # for the next call
                    raise rexc.ConnectionError(f"script not loaded: {exc}") from exc
                except rexc.ResponseError as exc:
                    broken = False
                    scripts.raise_script_error(exc)
                    raise
            broken = False
        finally:
            self._release(broken)
        return self._convert(reply)

    def _release(self, broken: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if broken:  # a reply may still be on its way: this connection cannot be reused
            conn.disconnect()
        self._pool.release(conn)
