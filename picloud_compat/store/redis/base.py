"""What every role of `RedisStore` shares: the connection, the scripts, one way to call them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import redis
import redis.exceptions as rexc

from picloud_compat.settings import Settings
from picloud_compat.store.redis import scripts
from picloud_compat.store.redis.arguments import ScriptArgs
from picloud_compat.store.redis.connection import connect, store_errors


class RedisBase:
    """The connection and the registered scripts; roles are mixins over this."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.redis = client
        self.settings = settings
        self._scripts = scripts.register(client)

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> Self:
        """A store on the Redis at `url`."""
        return cls(connect(url, settings), settings)

    def close(self) -> None:
        """Close the connection pool."""
        self.redis.close()

    def _run(self, name: str, record: ScriptArgs, rest: Sequence[Any] = (), what: str = "") -> Any:
        """Run script `name`; outages become ConnectionFailed, refusals typed errors."""
        with store_errors(what or name):
            try:
                return scripts.call(self._scripts[name], record, rest)
            except rexc.ResponseError as exc:
                scripts.raise_script_error(exc)
                raise
