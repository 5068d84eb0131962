"""Limits on how fast one party may use the dashboard.

`RequestLimiter`: each signed-in key (and the admin) may make `dashboard_rate` page
requests a second, with bursts of five seconds' worth, so that one tenant's scripted
clicking cannot load the job store for everyone (every page reads Redis).

`SignInThrottle`: failed sign-ins are counted, and too many refuse further tries for a
while.

API secrets are long random tokens, but the admin's password is chosen by a person, so
guessing must be slow. Failures are counted per client address, and per name signed
in as (across addresses, with a higher limit, so that many addresses cannot guess one
password quickly); over either limit, every sign-in from that address, or as that
name, is refused with 429 until the window's oldest failure ages out, right
credentials included. The counts live in the gateway process: each of several
gateways counts its own (the limit is then per gateway).

Behind a proxy the client address is the proxy's unless uvicorn trusts it
(``FORWARDED_ALLOW_IPS``; a proxy on the same host is trusted by default).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from picloud_compat.errors import CloudException

WINDOW_SECONDS = 300.0
"""How long a failed sign-in counts."""
PER_NAME_FACTOR = 5
"""A name may fail this many times the per-address limit (from any number of addresses)."""
MAX_TRACKED = 100_000
"""Addresses and names tracked at most (the oldest are forgotten past this)."""


BURST_SECONDS = 5.0
"""A key may spend this many seconds' worth of requests at once."""


class TooManyRequests(CloudException):
    """Refused for now (answered 429 with Retry-After)."""

    def __init__(self, what: str, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"{what}: try again in {self.retry_after} s", status=429)


class TooManySignIns(TooManyRequests):
    """Sign-ins refused for a while after repeated failures."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed sign-ins", retry_after)


class RequestLimiter:
    """A token bucket per name: `rate` requests a second, bursts of `BURST_SECONDS`."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate * BURST_SECONDS)
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, name: str) -> None:
        """Spend one request of `name`'s; TooManyRequests if it has none left."""
        now = time.monotonic()
        with self._lock:
            tokens, when = self._buckets.get(name, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - when) * self._rate)
            if tokens < 1:
                self._buckets[name] = (tokens, now)
                raise TooManyRequests("too many requests", (1 - tokens) / self._rate)
            if len(self._buckets) >= MAX_TRACKED and name not in self._buckets:
                del self._buckets[next(iter(self._buckets))]
            self._buckets[name] = (tokens - 1, now)


class SignInThrottle:
    """Counts failed sign-ins by client address and by name (see module doc)."""

    def __init__(self, attempts: int, window: float = WINDOW_SECONDS) -> None:
        """`attempts`: failures allowed per address within `window` seconds."""
        self._limits = {"address": attempts, "name": attempts * PER_NAME_FACTOR}
        self._window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, name: str) -> None:
        """Raise TooManySignIns if this address or name is over its limit."""
        now = time.monotonic()
        with self._lock:
            for kind, value in (("address", address), ("name", name)):
                times = self._recent((kind, value), now)
                if times is not None and len(times) >= self._limits[kind]:
                    raise TooManySignIns(times[0] + self._window - now)

    def failed(self, address: str, name: str) -> None:
        """Count one failed sign-in."""
        now = time.monotonic()
        with self._lock:
            for bucket in (("address", address), ("name", name)):
                times = self._recent(bucket, now)
                if times is None:
                    if len(self._failures) >= MAX_TRACKED:
                        del self._failures[next(iter(self._failures))]
                    times = self._failures[bucket] = deque()
                times.append(now)

    def _recent(self, bucket: tuple[str, str], now: float) -> deque[float] | None:
        """The bucket's failures within the window (older ones dropped), if any."""
        times = self._failures.get(bucket)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[bucket]
            return None
        return times
