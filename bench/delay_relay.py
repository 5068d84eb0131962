"""A TCP relay that holds every byte for a fixed time in each direction (W5's netem).

This kernel has no ``tc netem``, so to put Redis a network hop away W5 runs this relay in
front of it. Each chunk read from one side is written to the other ``one_way`` seconds
after it was read, in order per connection and direction; an end of stream (FIN) is held
the same way. A round trip through it therefore gains ``2 * one_way`` plus the relay's own
hop (two reads, two writes and the process's wake-ups in between).

One thread on epoll, with sockets registered once, because on two cores the relay's CPU
is taken from the systems it measures (a first version on ``select`` spent ~50 µs per
wake-up rebuilding its lists for 30 connections). epoll's own timeout is rounded up to a
millisecond, which would turn a 0.25 ms hold into 1 ms, so holds end on a timerfd (ns
resolution), and the timer slack is set to 1 ns. Since every chunk is held the same time,
chunks come due in the order they were read: one FIFO for all connections. How late each
went out (wake-up latency on a busy machine) is recorded and written to ``--stats`` on
exit, with the relay's CPU time, so its cost can be judged.

    python -m bench.delay_relay --listen 10.214.5.1:7000 --upstream 127.0.0.1:6379 \\
        --one-way-ms 0.25 --stats relay.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from array import array
from collections import deque
from pathlib import Path

READ_SIZE = 256 * 1024
HELD_LIMIT = 8 << 20  # stop reading a side while this many of its bytes are held
PR_SET_TIMERSLACK = 29
CLOCK_MONOTONIC = 1  # time.monotonic()'s clock
TFD_NONBLOCK, TFD_CLOEXEC, TFD_TIMER_ABSTIME = os.O_NONBLOCK, os.O_CLOEXEC, 1
IN, OUT = select.EPOLLIN, select.EPOLLOUT

libc = ctypes.CDLL(None, use_errno=True)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]


class Timer:
    """A one-shot timerfd armed at absolute `time.monotonic()` instants."""

    def __init__(self) -> None:
        self.fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self.spec = Itimerspec()

    def at(self, when: float) -> None:
        sec = int(when)
        self.spec.it_value.tv_sec = sec
        self.spec.it_value.tv_nsec = max(1, int((when - sec) * 1e9))
        if libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self.spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def clear(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass


class Pipe:
    """One direction of one connection: what `src` sent, on its way to `dst`."""

    __slots__ = ("conn", "dst", "fin", "held", "out", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket, conn: Connection) -> None:
        self.src, self.dst, self.conn = src, dst, conn
        self.held = 0  # bytes read and not yet due
        self.out = bytearray()  # due, not yet accepted by dst's socket
        self.fin = False  # src's end of stream was read
        self.shut = False  # ... and is due to be passed on to dst


class Connection:
    __slots__ = ("dead", "pipes")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.pipes = (Pipe(client, upstream, self), Pipe(upstream, client, self))
        self.dead = False


class Relay:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int], one_way: float):
        self.listener = socket.create_server(listen, backlog=512)
        self.listener.setblocking(False)
        self.upstream = upstream
        self.one_way = one_way
        self.timer = Timer()
        self.epoll = select.epoll()
        self.epoll.register(self.listener.fileno(), IN)
        self.epoll.register(self.timer.fd, IN)
        self.reading: dict[int, Pipe] = {}  # by src fd
        self.writing: dict[int, Pipe] = {}  # by dst fd
        self.masks: dict[int, int] = {}
        self.due: deque[tuple[float, Pipe, bytes | None]] = deque()  # None: end of stream
        self.lateness = array("d")  # seconds between a chunk's due time and its send
        self.window = 0  # where the lateness since the last `write_counts` starts
        self.connections = 0
        self.chunks = 0
        self.bytes = 0

    def serve(self) -> None:
        listener, timer = self.listener.fileno(), self.timer.fd
        while True:
            for fd, events in self.epoll.poll():
                if fd == timer:
                    self.timer.clear()
                    self._deliver()
                elif fd == listener:
                    self._accept()
                else:
                    if events & OUT and fd in self.writing:
                        self._flush(self.writing[fd])
                    if events & ~OUT and fd in self.reading:
                        self._read(self.reading[fd])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except BlockingIOError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(client, upstream)
            for p in conn.pipes:
                self.reading[p.src.fileno()] = p
                self.masks[p.src.fileno()] = IN
                self.epoll.register(p.src.fileno(), IN)
            self.connections += 1

    def _interest(self, fd: int) -> None:
        """Re-register `fd` for what its two pipes want now."""
        if fd not in self.masks:  # closed
            return
        mask = 0
        if (p := self.reading.get(fd)) and not p.fin and p.held < HELD_LIMIT:
            mask |= IN
        if fd in self.writing:
            mask |= OUT
        if mask != self.masks.get(fd):
            self.masks[fd] = mask
            self.epoll.modify(fd, mask)

    def _read(self, p: Pipe) -> None:
        if p.fin:  # a hang-up reported after its end of stream
            return
        try:
            data = p.src.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._drop(p.conn)
            return
        if data:
            p.held += len(data)
            self.chunks += 1
            self.bytes += len(data)
        else:
            p.fin = True
        due = time.monotonic() + self.one_way
        if not self.due and self.one_way > 0:
            self.timer.at(due)
        self.due.append((due, p, data or None))
        if p.fin or p.held >= HELD_LIMIT:
            self._interest(p.src.fileno())
        if self.one_way <= 0:  # no hold: the plain hop, as a baseline
            self._deliver()

    def _deliver(self) -> None:
        now = time.monotonic()
        while self.due and self.due[0][0] <= now:
            due, p, chunk = self.due.popleft()
            if p.conn.dead:
                continue
            self.lateness.append(now - due)
            if chunk is None:
                p.shut = True  # once `out` is written
            else:
                p.held -= len(chunk)
                p.out += chunk
            self._flush(p)
            if p.held < HELD_LIMIT <= p.held + len(chunk or b""):
                self._interest(p.src.fileno())
            now = time.monotonic()
        if self.due:
            self.timer.at(self.due[0][0])

    def _flush(self, p: Pipe) -> None:
        if p.conn.dead:
            return
        fd = p.dst.fileno()
        try:
            while p.out:
                del p.out[: p.dst.send(p.out)]
        except BlockingIOError:
            if fd not in self.writing:
                self.writing[fd] = p
                self._interest(fd)
            return
        except OSError:
            self._drop(p.conn)
            return
        if self.writing.pop(fd, None) is not None:
            self._interest(fd)
        if p.shut:
            try:
                p.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if all(q.shut and not q.out for q in p.conn.pipes):
                self._drop(p.conn)

    def _drop(self, conn: Connection) -> None:
        conn.dead = True
        for p in conn.pipes:
            fd = p.src.fileno()
            if fd < 0:
                continue
            self.reading.pop(fd, None)
            self.writing.pop(fd, None)
            self.masks.pop(fd, None)
            self.epoll.unregister(fd)
            p.src.close()

    def write_counts(self, path: Path) -> None:
        """Chunks and bytes relayed so far, and how late the chunks since the previous call
        went out: where a benchmark reads them (atomically: it waits for the file)."""
        tmp = path.with_suffix(".tmp")
        counts: dict[str, float] = {"chunks": self.chunks, "bytes": self.bytes}
        late = sorted(self.lateness[self.window :])
        self.window = len(self.lateness)
        counts |= {"late_p50_us": pct(late, 0.5), "late_p99_us": pct(late, 0.99)}
        tmp.write_text(json.dumps(counts))
        os.replace(tmp, path)

    def stats(self) -> dict[str, float]:
        late = sorted(self.lateness)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "one_way_ms": self.one_way * 1000,
            "connections": self.connections,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "late_p50_us": pct(late, 0.5),
            "late_p95_us": pct(late, 0.95),
            "late_p99_us": pct(late, 0.99),
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


def pct(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted seconds, in µs."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6 if ordered else 0.0


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=address, required=True, help="HOST:PORT")
    parser.add_argument("--upstream", type=address, required=True, help="HOST:PORT")
    parser.add_argument("--one-way-ms", type=float, required=True, help="hold, each way")
    parser.add_argument("--stats", type=Path, help="write a JSON summary here on exit")
    parser.add_argument("--counts", type=Path, help="write the counters here on SIGUSR1")
    args = parser.parse_args()
    # A SIGTERM unwinds through `finally`, so the summary is written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    relay = Relay(args.listen, args.upstream, args.one_way_ms / 1000)
    if args.counts:
        signal.signal(signal.SIGUSR1, lambda *_: relay.write_counts(args.counts))
    try:
        relay.serve()
    finally:
        if args.stats:
            args.stats.write_text(json.dumps(relay.stats()))


if __name__ == "__main__":
    main()
