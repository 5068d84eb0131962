"""Redis Sentinel URLs: one address for every process, wherever the master is now.

``sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`` names the
sentinels and the monitored service (the PASSWORD is the data nodes'; sentinels
themselves are assumed open to the platform's network). The store asks the sentinels
for the master on every new connection, so after a failover the next command reaches
the promoted replica; Celery's broker (kombu's sentinel transport) and beat (RedBeat's
``redis-sentinel``) are configured from the same URL by `celery_broker` and
`redbeat_options`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from picloud_compat.errors import ConfigurationError

SCHEME = "sentinel://"


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """The URL's parts; ConfigurationError naming what is wrong."""
        if not url.startswith(SCHEME):
            raise ConfigurationError(f"not a sentinel URL: {url!r}")
        rest = url[len(SCHEME) :]
        auth, _, rest = rest.rpartition("@")
        hosts, _, path = rest.partition("/")
        parts = [p for p in path.split("/") if p]
        if not hosts or not parts or len(parts) > 2:
            raise ConfigurationError(
                "a sentinel URL is sentinel://[user:password@]host:port[,host:port...]/service[/db]"
            )
        sentinels = []
        for host in hosts.split(","):
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit():
                raise ConfigurationError(f"sentinel address {host!r} is not host:port")
            sentinels.append((name, int(port)))
        user, _, password = auth.partition(":") if auth else ("", "", "")
        db = parts[1] if len(parts) == 2 else "0"
        if not db.isdigit():
            raise ConfigurationError(f"database {db!r} in the sentinel URL is not a number")
        return cls(
            tuple(sentinels),
            urllib.parse.unquote(parts[0]),
            int(db),
            urllib.parse.unquote(user) or None,
            urllib.parse.unquote(password) or None,
        )

    def celery_broker(self) -> tuple[str, dict[str, Any]]:
        """(broker_url, transport options) for kombu's sentinel transport."""
        auth = ""
        if self.password:
            user = urllib.parse.quote(self.username or "", safe="")
            auth = f"{user}:{urllib.parse.quote(self.password, safe='')}@"
        url = ";".join(f"sentinel://{auth}{h}:{p}/{self.db}" for h, p in self.sentinels)
        return url, {"master_name": self.service}

    def redbeat_options(self) -> dict[str, Any]:
        """RedBeat's ``redbeat_redis_options`` for its ``redis-sentinel`` mode."""
        options: dict[str, Any] = {
            "sentinels": list(self.sentinels),
            "service_name": self.service,
            "db": self.db,
        }
        if self.password:
            options["password"] = self.password
        if self.username:
            options["username"] = self.username
        return options
