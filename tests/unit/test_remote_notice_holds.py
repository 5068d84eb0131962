"""A newer client and an older gateway: a held pop is sent only where it is understood."""

from __future__ import annotations

from typing import Any

from picloud_compat.store.remote import wire
from picloud_compat.store.remote.client import RemoteStore


class Recording:
    """A transport that answers every call with an empty list and keeps the calls."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def request(self, method: str, body: bytes, timeout: float | None = None) -> bytes:
        self.calls.append(wire.unpack(body))
        return wire.pack([True, []])

    def close(self) -> None:
        """Nothing to release."""


def test_a_held_pop_carries_wanted_where_the_far_side_takes_it() -> None:
    transport = Recording()
    store = RemoteStore(transport)
    store.pop_notices("t", "c", 0.25, 16)
    store.pop_notices("t", "c", 0.5)
    assert transport.calls == [
        ["pop_notices", ["t", "c", 0.25, 16]],
        ["pop_notices", ["t", "c", 0.5]],
    ]


def test_an_older_gateway_gets_plain_pops_only() -> None:
    transport = Recording()
    store = RemoteStore(transport)
    store.notice_holds = False  # its session announced no "notice_holds"
    store.pop_notices("t", "c", 0.25, 16)
    assert transport.calls == [["pop_notices", ["t", "c", 0.25]]]
