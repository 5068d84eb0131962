"""Connecting to Redis, and turning its failures into the platform's errors.

Connection failures surface as `ConnectionFailed` within the socket timeouts; nothing
is retried automatically here, because a retried submit could create its jobs twice
(the runner and waiters ride out outages at their own level, where retrying is safe).
Errors are classified by redis-py's exception *type*, never by message text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer, PythonRespSerializer
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from picloud_compat.errors import ConnectionFailed
from picloud_compat.settings import Settings
from picloud_compat.store.redis.sentinel import SCHEME, SentinelURL

INLINE_ARGS = 64 * 1024
"""Values up to this size travel through the Lua scripts; bigger ones go around them."""

Reply = bytes | str
"""What redis-py declares a reply value to be. Every client `connect` builds keeps the
default ``decode_responses=False``, so at run time it is always bytes."""


def as_bytes(reply: Reply) -> bytes:
    """A reply value as the bytes it is (see `Reply`)."""
    return cast(bytes, reply)


def as_text(reply: Reply) -> str:
    """A reply value decoded from UTF-8 (see `Reply`)."""
    return cast(bytes, reply).decode()


def as_blob(reply: Reply | None) -> bytes | None:
    """A reply value that may be absent, as bytes (see `Reply`)."""
    return cast("bytes | None", reply)


_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError)
_REFUSED_WRITE = (rexc.OutOfMemoryError, rexc.ReadOnlyError, rexc.MasterDownError)


@contextlib.contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Translate redis-py failures into `ConnectionFailed` naming the operation.

    Callers see one exception type instead of redis-py's many. A write refused because
    Redis is full (OOM) or is a replica (READONLY, mid-failover) is an outage too: the
    caller's retry-through-outage logic applies, nothing is lost or run twice. So is a
    script Redis lacks even after it was loaded again (its scripts are being flushed, or
    it keeps restarting): the script did not run.
    """
    try:
        yield
    except _UNREACHABLE as exc:
        raise ConnectionFailed(f"{what} failed: cannot reach the job store ({exc})") from exc
    except _REFUSED_WRITE as exc:
        raise ConnectionFailed(f"{what} failed: the job store refused the write ({exc})") from exc
    except rexc.NoScriptError as exc:
        raise ConnectionFailed(f"{what} failed: the job store lost its scripts ({exc})") from exc


class _HybridPacker:
    """Packs commands with hiredis (fast) unless they carry a big value.

    hiredis copies every value into one buffer, which makes multi-megabyte writes ~3x
    slower than redis-py's packer, which sends big values as separate buffers
    (feasibility.md T7). Replies are parsed by hiredis either way.
    """

    def __init__(self, buffer_cutoff: int, encode: Callable[[Any], bytes]) -> None:
        self._python = PythonRespSerializer(buffer_cutoff, encode)
        self._fast: HiredisRespSerializer | PythonRespSerializer = (
            HiredisRespSerializer() if HIREDIS_AVAILABLE else self._python
        )

    def pack(self, *args: Any) -> list[bytes]:
        """The wire form of one command; big values keep their own buffers."""
        packer = self._fast
        for arg in args:
            if isinstance(arg, bytes | bytearray | memoryview) and len(arg) > INLINE_ARGS:
                packer = self._python
                break
        # redis-py does not annotate what the serializers' `pack` returns: list[bytes].
        return cast(list[bytes], packer.pack(*args))


class _Connection(redis.Connection):
    def _construct_command_packer(self, packer: object) -> _HybridPacker:
        return _HybridPacker(self._buffer_cutoff, self.encoder.encode)


def connect(url: str, settings: Settings) -> redis.Redis:
    """A client for `url` with the platform's timeouts and no hidden retries."""
    if url.startswith(SCHEME):
        return _sentinel_master(SentinelURL.parse(url), settings)
    extra: dict[str, Any] = {}
    if url.startswith("redis://"):
        extra["connection_class"] = _Connection
    return redis.Redis.from_url(
        url,
        **extra,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


def _sentinel_master(url: SentinelURL, settings: Settings) -> redis.Redis:
    """A client of whichever node the sentinels say is the master (asked again on
    every new connection, so a failover is followed)."""
    from redis.sentinel import Sentinel

    timeouts = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
    }
    sentinel = Sentinel(list(url.sentinels), sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        url.service,
        db=url.db,
        username=url.username,
        password=url.password,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )
    return master
