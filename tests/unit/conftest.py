"""Fixtures shared by the unit tests: hermetic PICLOUD_* environment, shipping registry."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import cloudpickle
import pytest

from picloud_compat import shipping


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No PICLOUD_* variable from the outer environment (or tests/conftest.py) leaks in."""
    for name in list(os.environ):
        if name.startswith("PICLOUD_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(autouse=True)
def _restore_shipping_registry() -> Iterator[None]:
    """Undo `ship_by_value` registrations a test made, so tests stay independent."""
    before = set(shipping._registered)
    yield
    for name in shipping._registered - before:
        module = sys.modules.get(name)
        if module is not None:
            try:
                cloudpickle.unregister_pickle_by_value(module)
            except ValueError:
                pass
        shipping._registered.discard(name)
