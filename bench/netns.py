"""Network namespaces on one bridge, for the multi-host tests and the W5 benchmark.

The bridge lives in a namespace of its own and each "host" is a namespace plugged into
it by a veth pair, so nothing touches the root namespace's interfaces. `close` kills
whatever still runs in the namespaces (by pid, from ``ip netns pids``) and deletes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

BRIDGE = "br0"


def ip(*args: str) -> str:
    """Run ``ip ARGS``; fail loudly (never skip) when it cannot be done."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


class Bridge:
    """A bridge in namespace ``<tag>-net`` and the namespaces plugged into it."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.bridge_ns = f"{tag}-net"
        self._made: list[str] = []

    def create(self) -> None:
        """The bridge's namespace and the bridge, up."""
        self._add_ns(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", BRIDGE, "up")

    def plug(self, ns: str, port: str, address: str) -> None:
        """A new namespace `ns` whose ``eth0`` has `address`/24, on the bridge's `port`."""
        self._add_ns(ns)
        ip(
            *("link", "add", port, "netns", self.bridge_ns, "type", "veth"),
            *("peer", "name", "eth0", "netns", ns),
        )
        ip("-n", self.bridge_ns, "link", "set", port, "master", BRIDGE, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")

    def _add_ns(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def close(self) -> None:
        """Kill what still runs in the namespaces (by pid), then delete them."""
        errors = []
        for name in reversed(self._made):
            try:
                for pid in ip("netns", "pids", name).split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                ip("netns", "del", name)
            except Exception as exc:  # keep deleting the others
                errors.append(str(exc))
        self._made.clear()
        if errors:
            raise RuntimeError("; ".join(errors))
