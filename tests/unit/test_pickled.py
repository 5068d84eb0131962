"""Argument summaries are read from pickles without unpickling them."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import cloudpickle

from picloud_compat.dashboard.pickled import MAX_TEXT, describe, describe_arguments


@dataclass
class Point:
    x: int
    y: int


class Boom:
    """Unpickling this runs a command: the summary must not."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


def args_pickle(*args: object, **kwargs: object) -> bytes:
    payload = (args, kwargs) if kwargs else (args,)
    return cloudpickle.dumps(payload, protocol=5)


def test_plain_arguments_read_as_python() -> None:
    text = describe_arguments(args_pickle(3, "abc", 2.5, None, True, b"xyz"))
    assert text == "(3, 'abc', 2.5, None, True, <3 bytes>)"


def test_keyword_arguments_and_containers() -> None:
    text = describe_arguments(args_pickle([1, 2], {"a": (1,)}, k={"x", "y"} and 7, name="n"))
    assert text == "([1, 2], {'a': (1,)}, k=7, name='n')"


def test_objects_are_named_not_built() -> None:
    # by reference (as pickle does for an installed class)
    text = describe_arguments(pickle.dumps(((Point(1, 2),),), protocol=5))
    assert text == "(tests.unit.test_pickled.Point(…))"
    # by value (as cloudpickle ships a user's own class): still a bounded, safe summary
    shipped = cloudpickle.dumps(((lambda: 1,),), protocol=5)
    assert describe_arguments(shipped).startswith("(") and len(describe_arguments(shipped)) < 300


def test_a_malicious_pickle_is_described_and_never_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    payload = pickle.dumps(((Boom(str(marker)),),), protocol=5)
    text = describe_arguments(payload)
    assert "system(…)" in text
    assert not marker.exists()


def test_long_and_broken_pickles_are_clipped_not_raised() -> None:
    text = describe(pickle.dumps(list(range(10_000)), protocol=5))
    assert text.startswith("[0, 1, 2") and text.endswith("…]")
    assert len(describe(pickle.dumps("x" * 10_000))) <= MAX_TEXT
    assert describe(b"\x80\x05garbage") == "…"
    assert describe(pickle.dumps([1, 2, 3])[:-3]) in ("[1, 2, 3]", "[1, 2]", "[]", "…")


def test_a_shared_graph_is_summarised_in_bounded_time() -> None:
    """Memo references make ``x = [x] * 8`` ten times a 200-byte pickle of 8**10 paths:
    writing it out in full would take minutes (and pin the gateway)."""
    import time

    x: list[object] = []
    for _ in range(10):
        x = [x] * 8
    y: set[object] = set()
    blob = pickle.dumps(((x, frozenset({1, 2}), {(1,): [y]}),), protocol=5)
    start = time.perf_counter()
    text = describe_arguments(blob)
    assert time.perf_counter() - start < 0.5
    assert text.startswith("([[[") and len(text) <= MAX_TEXT
