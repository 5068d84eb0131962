"""Limits on how fast one party may use the dashboard.

`RequestLimiter`: each signed-in key (and the admin) may make `dashboard_rate` page
requests a second, with bursts of five seconds' worth, so that one tenant's scripted
clicking cannot load the job store for everyone (every page reads Redis).

`SignInThrottle`: failed sign-ins are counted per client address (an IPv6 /64 counts as
one address), and too many refuse every sign-in from that address, right credentials
included, until the window's oldest failure ages out. API secrets are long random
tokens; the admin's password is chosen by a person, so guessing must be slow. Failures
are not counted per name: a limit on the admin's name would let anyone lock the admin
out, so the admin password must be long enough to withstand guessing from many
addresses (the deploy guide says so). The counts live in the gateway process: each of
several gateways (or uvicorn workers) counts its own.

The client address is the connection's. `picloud gateway` lets uvicorn read a proxy's
forwarded headers only from the addresses in ``FORWARDED_ALLOW_IPS``: trusting them from
any local process by default would let a job on the gateway's host pose as a new
address at every try.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque

from picloud_compat.errors import CloudException

WINDOW_SECONDS = 300.0
"""How long a failed sign-in counts."""
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
    """Counts failed sign-ins by client address (see module doc)."""

    def __init__(self, attempts: int, window: float = WINDOW_SECONDS) -> None:
        """`attempts`: failures allowed per address within `window` seconds."""
        self._limit = attempts
        self._window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise TooManySignIns if this address is over its limit."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(counted_as(address), now)
            if times is not None and len(times) >= self._limit:
                raise TooManySignIns(times[0] + self._window - now)

    def failed(self, address: str) -> None:
        """Count one failed sign-in."""
        now = time.monotonic()
        bucket = counted_as(address)
        with self._lock:
            times = self._recent(bucket, now)
            if times is None:
                if len(self._failures) >= MAX_TRACKED:
                    del self._failures[next(iter(self._failures))]
                times = self._failures[bucket] = deque()
            times.append(now)

    def _recent(self, bucket: str, now: float) -> deque[float] | None:
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


def counted_as(address: str) -> str:
    """What failures are counted under: the address, or its /64 for IPv6 (one host
    commonly has a whole /64 to pick addresses from)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
