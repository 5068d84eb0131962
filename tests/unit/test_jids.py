from __future__ import annotations

from typing import Any

import pytest

from picloud_compat.jids import RangeSet, normalize


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (5, (True, [5])),
        ([5], (False, [5])),
        ([3, 1, 2], (False, [3, 1, 2])),
        ((1, 2), (False, [1, 2])),
        ([], (False, [])),
        (range(1, 4), (False, [1, 2, 3])),
        (range(0), (False, [])),
        ([1, range(3, 5), 9], (False, [1, 3, 4, 9])),
        ([range(1, 3), range(7, 9)], (False, [1, 2, 7, 8])),
        (iter([4, 5]), (False, [4, 5])),
        ({6}, (False, [6])),
    ],
)
def test_normalize(given: Any, expected: tuple[bool, list[int]]) -> None:
    assert normalize(given) == expected


def test_normalize_returns_plain_ints() -> None:
    class Jid(int):
        pass

    single, jids = normalize(Jid(4))
    assert single and jids == [4] and type(jids[0]) is int


@pytest.mark.parametrize(
    "given",
    ["5", "", b"5", True, False, None, 2.0, [1, "2"], [b"1"], [True], [1, None], [[1, 2]], [1.0]],
)
def test_normalize_type_errors(given: Any) -> None:
    with pytest.raises(TypeError, match="jid\\(s\\) must be integers"):
        normalize(given)


def test_rangeset_membership() -> None:
    rs = RangeSet()
    rs.add_range(10, 3)
    rs.add_range(1, 2)
    rs.add_range(20, 1)
    members = [j for j in range(0, 25) if j in rs]
    assert members == [1, 2, 10, 11, 12, 20]


def test_rangeset_empty_and_zero_count() -> None:
    rs = RangeSet()
    assert 1 not in rs
    rs.add_range(5, 0)
    rs.add_range(5, -3)
    assert 5 not in rs
    assert 4 not in rs


def test_rangeset_non_int_is_not_a_member() -> None:
    rs = RangeSet()
    rs.add_range(1, 5)
    assert "1" not in rs
    assert None not in rs
    assert 1.5 not in rs


def test_rangeset_adjacent_ranges() -> None:
    rs = RangeSet()
    rs.add_range(4, 2)
    rs.add_range(1, 3)
    assert [j for j in range(8) if j in rs] == [1, 2, 3, 4, 5]


def test_rangeset_overlapping_ranges() -> None:
    rs = RangeSet()
    rs.add_range(1, 10)  # 1..10
    rs.add_range(3, 2)  # 3..4, inside the first
    assert 7 in rs
