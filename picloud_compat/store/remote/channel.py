"""`Channel`: calls both ways over one socket between a pool process and its executor.

The pool process asks its executor to run a chunk; while it runs, the executor asks
the pool process for store operations (claims, outcomes, nested jobs, waits). Both
directions share one socket, so each frame says whether it is a request or a reply
and which call it belongs to. Several calls may be in flight at once (a job's thread
waiting for notices while the runner records outcomes), so requests are served by a
few threads and replies are matched by id.

A frame is a 4-byte big-endian length and ``msgpack([kind, id, method, body])``. A
request with id 0 is a one-way notification, handled in order on the reading thread.
"""

from __future__ import annotations

import itertools
import queue
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future

import msgpack

from picloud_compat.errors import ConnectionFailed

REQUEST, REPLY = 0, 1
MAX_FRAME = 1 << 31
_LENGTH = struct.Struct(">I")

Handler = Callable[[str, bytes], bytes]
"""Answers one request (method, body) with an encoded reply."""


class ChannelClosed(ConnectionFailed):
    """The other end of the channel went away (it exited, or was killed)."""


class Channel:
    """One end of a two-way call channel; also a `Transport` for `RemoteStore`."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler | None = None,
        *,
        handlers: int = 4,
        inline: Callable[[str, bytes], None] | None = None,
        max_frame: int = MAX_FRAME,
        max_queued: int = 0,
        start_thread: Callable[[threading.Thread], threading.Thread] | None = None,
    ) -> None:
        self._sock = sock
        self._handler = handler
        self._inline = inline
        self._max_frame = max_frame
        self._max_queued = max_queued  # 0: unbounded (the trusted side's own end)
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[bytes]] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._requests: queue.SimpleQueue[tuple[int, str, bytes] | None] = queue.SimpleQueue()
        self.closed = threading.Event()
        start = start_thread or _start
        start(threading.Thread(target=self._read, name="picloud-channel", daemon=True))
        for _ in range(handlers if handler is not None else 0):
            start(threading.Thread(target=self._serve, name="picloud-channel-call", daemon=True))

    def request(self, method: str, body: bytes, timeout: float | None = None) -> bytes:
        """Send a call and wait for its answer; ChannelClosed if the other end goes."""
        call_id = next(self._ids)
        future: Future[bytes] = Future()
        with self._pending_lock:
            if self.closed.is_set():
                raise ChannelClosed("the channel is closed")
            self._pending[call_id] = future
        try:
            self._send(REQUEST, call_id, method, body)
            return future.result(timeout)
        except TimeoutError:
            raise ConnectionFailed(f"no answer to {method!r} within {timeout} s") from None
        finally:
            with self._pending_lock:
                self._pending.pop(call_id, None)

    def notify(self, method: str, body: bytes) -> None:
        """A one-way message: handled in order by the other end's `inline` handler,
        with no answer to wait for (what a job reports as it starts and ends)."""
        self._send(REQUEST, 0, method, body)

    def close(self) -> None:
        """Shut the socket; calls in flight on either end fail with ChannelClosed."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _send(self, kind: int, call_id: int, method: str, body: bytes) -> None:
        frame = msgpack.packb([kind, call_id, method, body], use_bin_type=True)
        try:
            with self._send_lock:
                self._sock.sendall(_LENGTH.pack(len(frame)) + frame)
        except OSError as exc:
            raise ChannelClosed(f"the channel is closed ({exc})") from None

    def _read(self) -> None:
        try:
            while True:
                head = self._recv(_LENGTH.size)
                if head is None:
                    return
                (length,) = _LENGTH.unpack(head)
                if length > self._max_frame:
                    return  # closed: the other end sends more than it ever may
                frame = self._recv(length)
                if frame is None:
                    return
                kind, call_id, method, body = msgpack.unpackb(frame, raw=False)
                if kind == REPLY:
                    with self._pending_lock:
                        future = self._pending.get(call_id)
                    if future is not None and not future.done():
                        future.set_result(body)
                elif call_id == 0:
                    if self._inline is not None:
                        self._inline(method, body)
                elif self._handler is not None:
                    if self._max_queued and self._requests.qsize() >= self._max_queued:
                        return  # closed: calls pile up faster than they are served
                    self._requests.put((call_id, method, body))
        except Exception:  # a malformed frame, a failing inline handler: the end of it
            return
        finally:
            self._closed()

    def _recv(self, size: int) -> bytes | None:
        parts: list[bytes] = []
        while size:
            part = self._sock.recv(min(size, 1 << 20))
            if not part:
                return None
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def _serve(self) -> None:
        assert self._handler is not None
        while True:
            item = self._requests.get()
            if item is None:
                self._requests.put(None)  # wake the next serving thread too
                return
            call_id, method, body = item
            try:
                answer = self._handler(method, body)
            except Exception:  # the handler encodes errors; this is a broken frame
                continue
            try:
                self._send(REPLY, call_id, method, answer)
            except ChannelClosed:
                return

    def _closed(self) -> None:
        with self._pending_lock:
            self.closed.set()
            pending = list(self._pending.values())
        for future in pending:
            if not future.done():
                future.set_exception(ChannelClosed("the other end of the channel went away"))
        self._requests.put(None)


def _start(thread: threading.Thread) -> threading.Thread:
    thread.start()
    return thread
