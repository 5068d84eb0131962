"""When a cron's slot is due: never before its time, and at its time exactly."""

from datetime import UTC, datetime

import pytest

from picloud_compat.cron.expressions import previous_fire


def at(h: int, m: int, s: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 12, 1, h, m, s, us, UTC)


@pytest.mark.parametrize(
    ("expr", "now", "slot"),
    [
        ("* * * * *", at(11, 36, 59, 253_000), at(11, 36)),  # not 11:37, a second early
        ("* * * * *", at(11, 37), at(11, 37)),  # exactly on the slot: that slot
        ("* * * * *", at(11, 37, 0, 1), at(11, 37)),
        ("0 0 * * *", at(23, 59, 59, 999_999), datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("* * * * * */10", at(11, 36, 59, 900_000), at(11, 36, 50)),
    ],
)
def test_the_slot_served_is_never_in_the_future(expr: str, now: datetime, slot: datetime) -> None:
    assert previous_fire(expr, now) == slot
    assert previous_fire(expr, now) <= now
