"""The simulator's gateway: the same app, on a loopback port, for the script's lifetime.

`cloud.rest.publish` on the simulator starts it (once) and returns a URL on it, so a
published function can be tried with ``curl`` while the script runs. It binds
127.0.0.1 only and acts as the simulator's tenant without credentials: whoever can
reach the loopback of this machine could already run code as this user.
"""

from __future__ import annotations

import threading
import time

import uvicorn

from picloud_compat.client.mode import Mode
from picloud_compat.errors import CloudException
from picloud_compat.rest.gateway import create_app
from picloud_compat.settings import Settings
from picloud_compat.store.contract import TenantStore

START_TIMEOUT = 10.0


class LocalGateway:
    """A uvicorn server in a daemon thread, serving the simulator's store."""

    def __init__(self, settings: Settings, store: TenantStore, mode: Mode, tenant: str) -> None:
        app = create_app(settings, store, mode, lambda _credentials: tenant)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=settings.simulator_rest_port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="picloud-local-gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise CloudException(
                    f"the simulator's REST gateway could not start on 127.0.0.1:"
                    f"{settings.simulator_rest_port}"
                )
            time.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43517``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving (in-flight requests finish first)."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
