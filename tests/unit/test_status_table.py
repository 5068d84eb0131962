"""The compact table of finished statuses a client keeps while waiting."""

from __future__ import annotations

import tracemalloc

import pytest

from picloud_compat.client.status_table import StatusTable


def test_it_behaves_as_a_mapping() -> None:
    table = StatusTable()
    table[5] = "done"
    table[70_000] = "error"
    table[5] = "killed"  # overwriting does not count twice
    assert len(table) == 2 and table[5] == "killed" and table.get(6) is None
    assert 70_000 in table and 6 not in table and "5" not in table and -1 not in table
    assert list(table) == [5, 70_000]
    assert dict(table.items()) == {5: "killed", 70_000: "error"}
    assert table.pop(5) == "killed" and len(table) == 1
    with pytest.raises(KeyError):
        table[5]
    with pytest.raises(ValueError, match="cannot remember status 'sleeping'"):
        table[1] = "sleeping"


def test_get_answers_like_a_mappings_get() -> None:
    table = StatusTable()
    table[3] = "done"
    assert table.get(3) == "done" and table.get(3, "x") == "done"
    assert table.get(4) is None and table.get(4, "queued") == "queued"
    assert table.get(1 << 20) is None  # a page never allocated
    assert table.get(-1, "none") == "none"
    del table[3]
    assert table.get(3) is None


def test_a_million_statuses_take_about_a_megabyte() -> None:
    tracemalloc.start()
    table = StatusTable()
    for jid in range(1, 1_000_001):
        table[jid] = "done"
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == 1_000_000
    assert size < 2 * 2**20, f"{size / 2**20:.1f} MB"


def test_dropping_the_oldest_page_forgets_only_its_jids() -> None:
    table = StatusTable()
    table[1] = "done"
    table[1 << 20] = "error"
    table.drop_oldest_page()
    assert 1 not in table and table[1 << 20] == "error" and len(table) == 1
