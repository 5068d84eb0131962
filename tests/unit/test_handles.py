"""`JobId` and `JobList` stay drop-in for the int and list PiCloud returned."""

from __future__ import annotations

import copy
import json
import operator
import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest
from IPython.lib.pretty import pretty

from picloud_compat.client.handles import JobId, JobList
from picloud_compat.jids import normalize
from picloud_compat.options import parse_depends_on


class Unpicklable:
    """Stands for the client a handle remembers: it must never be pickled."""

    closed = False

    def __reduce__(self) -> Any:
        raise AssertionError("the client was pickled")


def jid(value: int = 17) -> JobId:
    return JobId(value, Unpicklable())  # type: ignore[arg-type]


def jids(values: Any = range(3, 8)) -> JobList:
    return JobList(values, Unpicklable())  # type: ignore[arg-type]


def test_text_forms_are_the_ints_and_lists() -> None:
    percent = "%d" % jid()  # noqa: UP031 (old code formats jids this way)
    assert (repr(jid()), str(jid()), f"{jid()}", percent, f"{jid():05d}") == (
        "17",
        "17",
        "17",
        "17",
        "00017",
    )
    assert repr(jids()) == str(jids()) == "[3, 4, 5, 6, 7]"
    assert json.dumps(jid()) == "17"
    assert json.dumps({"jid": jid(), "jids": jids()}) == '{"jid": 17, "jids": [3, 4, 5, 6, 7]}'
    # what IPython prints as text/plain (also in a notebook, beside the card)
    assert pretty(jid()) == "17"
    assert pretty(jids()) == "[3, 4, 5, 6, 7]"
    long = jids(range(1, 2001))
    assert pretty(long) == pretty(list(long))  # IPython's own truncation of a long list


def test_equality_hashing_and_types() -> None:
    assert jid() == 17 and 17 == jid() and jid() != 18  # noqa: SIM300 (both sides' __eq__)
    assert hash(jid()) == hash(17) and {jid(): "x"}[17] == "x" and {17: "y"}[jid()] == "y"
    assert jid() in {17} and 17 in {jid()}
    assert isinstance(jid(), int) and not isinstance(jid(), bool)
    assert jids() == [3, 4, 5, 6, 7] and [3, 4, 5, 6, 7] == jids()  # noqa: SIM300
    assert isinstance(jids(), list) and all(type(j) is int for j in jids())
    assert sorted(jids(), reverse=True) == [7, 6, 5, 4, 3]
    assert int(jid()) == 17 and type(int(jid())) is int


@pytest.mark.parametrize(
    "op",
    [
        lambda j: j + 1,
        lambda j: 1 + j,
        lambda j: j - 1,
        lambda j: j * 2,
        lambda j: j // 2,
        lambda j: j % 5,
        lambda j: j**2,
        lambda j: -j,
        lambda j: +j,
        lambda j: abs(j),
        lambda j: j << 1,
        lambda j: j & 1,
        lambda j: round(j),
        operator.index,
        int,
    ],
)
def test_arithmetic_gives_plain_ints(op: Callable[[int], int]) -> None:
    result = op(jid())
    assert type(result) is int and result == op(17)


def test_derived_lists_are_plain_lists() -> None:
    """Documented: only what cloud.map returned is a card; slices, copies and sums are lists."""
    plus = jids() + [9]  # noqa: RUF005 (list.__add__ is what is tested)
    for derived in (jids()[1:3], jids().copy(), plus, jids() * 2, copy.copy(jids())):
        assert type(derived) is list
    assert jids()[1:3] == [4, 5] and type(jids()[0]) is int
    grown = jids()
    grown += [8]
    assert type(grown) is JobList and grown == [3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_gives_plain_values_without_the_client(protocol: int) -> None:
    one = pickle.loads(pickle.dumps(jid(), protocol))
    many = pickle.loads(pickle.dumps(jids(), protocol))
    assert type(one) is int and one == 17
    assert type(many) is list and many == [3, 4, 5, 6, 7]
    nested = pickle.loads(pickle.dumps({"a": [jid(), jids()]}, protocol))
    assert nested == {"a": [17, [3, 4, 5, 6, 7]]} and type(nested["a"][0]) is int


def test_cloudpickle_into_a_job_carries_plain_values() -> None:
    one, many = jid(), jids()

    def job() -> tuple[str, str, int]:
        return type(one).__name__, type(many).__name__, one + sum(many)

    loaded = pickle.loads(cloudpickle.dumps(job))
    assert loaded() == ("int", "list", 17 + 25)
    assert pickle.loads(cloudpickle.dumps((one, many))) == (17, [3, 4, 5, 6, 7])


def test_copies() -> None:
    one = jid()
    assert copy.copy(one) is one and copy.deepcopy(one) is one
    assert copy.deepcopy([jids()]) == [[3, 4, 5, 6, 7]]


def test_every_api_function_reads_them_as_plain_jids() -> None:
    assert normalize(jid()) == (True, [17]) and type(normalize(jid())[1][0]) is int
    single, listed = normalize(jids())
    assert not single and listed == [3, 4, 5, 6, 7] and type(listed) is list
    assert normalize([jid(), jids()[0]]) == (False, [17, 3])
    assert parse_depends_on(jid()) == (17,) and parse_depends_on(jids()) == (3, 4, 5, 6, 7)
    assert all(type(j) is int for j in parse_depends_on([jid()]))


def test_a_million_jids_cost_what_the_list_costs() -> None:
    big = JobList(range(1, 1_000_001))
    assert len(big) == 1_000_000 and big[-1] == 1_000_000 and type(big[5]) is int
    assert pickle.loads(pickle.dumps(big)) == list(range(1, 1_000_001))
