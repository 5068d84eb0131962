"""What the dashboard's sign-in throttle counts failures under (`dashboard.throttle`)."""

from __future__ import annotations

import pytest

from picloud_compat.dashboard.throttle import SignInThrottle, TooManySignIns, counted_as


def test_an_ipv6_host_counts_as_its_64() -> None:
    assert counted_as("2001:db8:1:2:aaaa::1") == counted_as("2001:db8:1:2:bbbb::9")
    assert counted_as("2001:db8:1:2::1") != counted_as("2001:db8:1:3::1")
    assert counted_as("::ffff:192.0.2.7") == "192.0.2.7"  # IPv4 over an IPv6 socket
    assert counted_as("192.0.2.7") != counted_as("192.0.2.8")


def test_addresses_of_one_64_share_a_limit() -> None:
    throttle = SignInThrottle(attempts=2)
    throttle.failed("2001:db8::1")
    throttle.failed("2001:db8::2")
    with pytest.raises(TooManySignIns):
        throttle.check("2001:db8::3")
    throttle.check("2001:db8:0:1::1")  # another /64
