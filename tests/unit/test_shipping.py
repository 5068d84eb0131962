from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType

import cloudpickle
import pytest

from picloud_compat import options, shipping
from picloud_compat.shipping import local_modules_of, ship_by_value


@dataclass
class LocalPackage:
    package: str  # pkg_xxx, holding core.py
    helper: str  # helper_xxx.py, imported by core
    deep: str  # deep_xxx.py, imported only by the helper
    work: FunctionType
    root: Path


@pytest.fixture
def local_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPackage]:
    """A user's project on disk: pkg/core.py imports helper.py, which imports deep.py."""
    tag = uuid.uuid4().hex[:10]
    package, helper, deep = f"pkg_{tag}", f"helper_{tag}", f"deep_{tag}"
    root = tmp_path / "project"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "core.py").write_text(
        textwrap.dedent(
            f"""
            import json

            import redis

            import {helper}


            def work(x):
                assert redis.Redis is not None
                return json.loads(json.dumps({helper}.double(x)))
            """
        )
    )
    (root / f"{helper}.py").write_text(
        f"import {deep}\n\n\ndef double(x):\n    return {deep}.TWO * x\n"
    )
    (root / f"{deep}.py").write_text("TWO = 2\n")
    monkeypatch.syspath_prepend(str(root))
    core = importlib.import_module(f"{package}.core")
    try:
        yield LocalPackage(package, helper, deep, core.work, root)
    finally:
        for name in list(sys.modules):
            if name.split(".")[0] in (package, helper, deep):
                del sys.modules[name]


def test_local_modules_are_found(local_package: LocalPackage) -> None:
    found = local_modules_of([local_package.work])
    assert local_package.package in found
    assert local_package.helper in found


def test_local_modules_are_found_transitively(local_package: LocalPackage) -> None:
    assert local_modules_of([local_package.work]) == {
        local_package.package,
        local_package.helper,
        local_package.deep,
    }


def test_stdlib_and_site_packages_are_not_shipped(local_package: LocalPackage) -> None:
    found = local_modules_of([local_package.work])
    assert "json" not in found
    assert "redis" not in found
    assert not {"json", "redis", "cloudpickle", "picloud_compat"} & shipping._registered


def test_installed_code_is_never_shipped() -> None:
    import redis

    assert local_modules_of([redis.from_url, redis.Redis, options.parse]) == set()
    assert local_modules_of([shipping, cloudpickle, functools.partial(options.parse)]) == set()


def test_partials_methods_and_instances_are_followed(local_package: LocalPackage) -> None:
    expected = {local_package.package, local_package.helper, local_package.deep}
    assert local_modules_of([functools.partial(local_package.work, 1)]) == expected

    helper = sys.modules[local_package.helper]
    assert local_modules_of([helper]) == {local_package.helper, local_package.deep}


def test_ship_by_value_registers_modules(local_package: LocalPackage) -> None:
    shipped = ship_by_value(local_package.work)
    assert shipped == {local_package.package, local_package.helper, local_package.deep}
    assert shipped <= shipping._registered
    # A second call finds the same modules and registers nothing new.
    assert ship_by_value(local_package.work) == shipped


def test_a_package_changed_since_the_last_call_is_walked_again(
    local_package: LocalPackage, tmp_path: Path
) -> None:
    """What a package reaches is remembered between calls (walking it is most of the
    cost of a call), but not past a change: rebinding a name of the user's module to
    another local package's function, or importing a new local module into it."""
    before = local_modules_of([local_package.work])
    (local_package.root / "extra_mod.py").write_text("def f():\n    return 1\n")
    (local_package.root / "other_mod.py").write_text("def g():\n    return 2\n")
    deep = sys.modules[local_package.deep]
    try:
        extra = importlib.import_module("extra_mod")
        deep.TWO = extra.f  # a name bound anew
        assert local_modules_of([local_package.work]) == before | {"extra_mod"}
        deep.other = importlib.import_module("other_mod")  # a new name
        assert local_modules_of([local_package.work]) == before | {"extra_mod", "other_mod"}
        del deep.TWO, deep.other
        assert local_modules_of([local_package.work]) == before
    finally:
        sys.modules.pop("extra_mod", None)
        sys.modules.pop("other_mod", None)


def test_shipped_function_runs_where_its_package_is_not_importable(
    local_package: LocalPackage, tmp_path: Path
) -> None:
    """End to end: a fresh interpreter in an empty directory runs the user's function."""
    ship_by_value(local_package.work)
    blob = tmp_path / "work.pickle"
    blob.write_bytes(cloudpickle.dumps(local_package.work))
    empty = tmp_path / "empty"
    empty.mkdir()
    code = textwrap.dedent(
        f"""
        import pickle, sys
        try:
            import {local_package.package}
        except ImportError:
            pass
        else:
            sys.exit("the package is importable; the test proves nothing")
        with open(sys.argv[1], "rb") as f:
            work = pickle.load(f)
        print(work(21))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(blob)],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
