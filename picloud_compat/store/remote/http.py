"""`HttpTransport`: remote store calls to the gateway, as PiCloud's client made them.

Every call is ``POST /v1/rpc/<method>`` with a msgpack body and HTTP Basic
credentials (the API key and its secret; nothing else is needed or held). One
keep-alive connection per thread; HTTPS verifies the gateway's certificate with the
system's trust store (``SSL_CERT_FILE`` names another).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import urllib.parse

from picloud_compat.errors import CloudException, ConnectionFailed, InvalidCredentials

CONTENT_TYPE = "application/x-msgpack"
RPC_PATH = "/v1/rpc/"
SESSION_PATH = "/v1/session"


class HttpTransport:
    """Carries remote store calls to a gateway URL."""

    def __init__(self, url: str, api_key: str, secret: str, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CloudException(f"not a gateway URL: {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        token = base64.b64encode(f"{api_key}:{secret}".encode()).decode()
        self._auth = f"Basic {token}"
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, body: bytes, timeout: float | None = None) -> bytes:
        """POST one call; retried once on a keep-alive connection the server closed."""
        return self.post(RPC_PATH + method, body, timeout)

    def post(self, path: str, body: bytes, timeout: float | None = None) -> bytes:
        """The body of a successful POST to `path` on the gateway."""
        for attempt in (0, 1):
            conn = self._connection()
            conn.timeout = timeout or self._timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            try:
                conn.request(
                    "POST",
                    self._base + path,
                    body=body,
                    headers={"Authorization": self._auth, "Content-Type": CONTENT_TYPE},
                )
                reply = conn.getresponse()
                data = reply.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if attempt:
                    raise ConnectionFailed(
                        f"the gateway {self.url} closed the connection"
                    ) from None
                continue
            except OSError as exc:
                conn.close()
                raise ConnectionFailed(f"cannot reach the gateway {self.url}: {exc}") from None
            return _checked(reply.status, data, self.url)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _checked(status: int, data: bytes, url: str) -> bytes:
    if status == 200:
        return data
    if status == 401:
        raise InvalidCredentials()
    if status in (502, 503, 504):
        raise ConnectionFailed(f"the gateway {url} cannot reach the job store ({status})")
    detail = data[:300].decode(errors="replace")
    raise CloudException(f"the gateway {url} answered {status}: {detail}", status=status)
