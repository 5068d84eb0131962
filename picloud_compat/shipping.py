"""Ship the user's own code by value, so workers need nothing but the platform.

cloudpickle pickles functions and classes *by reference* when their module is
importable here, and a worker started in an empty directory cannot import the user's
``helpers.py``. PiCloud users expected their local modules to "just work", so before
pickling we walk the function's globals, closure and defaults (and the types of the
arguments), transitively through every local module reached, and register each local
top-level module or package with `cloudpickle.register_pickle_by_value`.

"Local" means: loaded from a file that is neither in the standard library nor in
site-packages, and not part of an installed distribution (editable installs count as
installed, so the platform itself is never shipped).
"""

from __future__ import annotations

import functools
import importlib.metadata
import sys
import sysconfig
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cloudpickle

_NEVER_SHIP = frozenset({"__main__", "cloud", "picloud_compat", "builtins"})
_registered: set[str] = set()


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(str(Path(p).resolve()))
    for p in sys.path:
        if "site-packages" in p or "dist-packages" in p:
            paths.add(str(Path(p).resolve()))
    return tuple(sorted(paths))


@functools.cache
def _distribution_top_levels() -> frozenset[str]:
    return frozenset(importlib.metadata.packages_distributions())


@functools.cache
def _is_local_top_level(name: str) -> bool:
    if name in _NEVER_SHIP or name in sys.builtin_module_names:
        return False
    if name in sys.stdlib_module_names or name in _distribution_top_levels():
        return False
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return False  # builtins, extensions and namespace packages cannot be shipped
    resolved = str(Path(file).resolve())
    return not any(resolved.startswith(root + "/") for root in _installed_roots())


def _top_level(module_name: str | None) -> str | None:
    if not module_name:
        return None
    return module_name.partition(".")[0]


def local_modules_of(roots: Iterable[Any]) -> set[str]:
    """Top-level names of the local modules `roots` reach, transitively."""
    return _walk(roots, set(), _add_package_reach)


def _walk(
    roots: Iterable[Any], found: set[str], add: Callable[[str, set[str], list[Any]], None]
) -> set[str]:
    """The local top-level names reached from `roots` (added to `found`); `add(top,
    found, stack)` is called once per new local top-level name."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            _note(obj.__name__, found, stack, add)
            continue
        if isinstance(obj, types.FunctionType):
            _note(obj.__module__, found, stack, add)
            if _is_user_code(obj.__module__):
                stack.extend(_function_references(obj))
        elif isinstance(obj, type):
            _note(obj.__module__, found, stack, add)
            if _is_user_code(obj.__module__):
                stack.extend(v for v in vars(obj).values() if isinstance(v, types.FunctionType))
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__func__)
            stack.append(type(obj.__self__))
        elif isinstance(obj, functools.partial):
            stack.extend((obj.func, *obj.args, *obj.keywords.values()))
        else:
            cls = type(obj)
            if cls.__module__ not in ("builtins",):
                stack.append(cls)
    return found


def _note(
    module_name: str | None,
    found: set[str],
    stack: list[Any],
    add: Callable[[str, set[str], list[Any]], None],
) -> None:
    top = _top_level(module_name)
    if top and top not in found and _is_local_top_level(top):
        add(top, found, stack)


def _add_members(top: str, found: set[str], stack: list[Any]) -> None:
    """Walk everything a newly reached local package defines."""
    found.add(top)
    stack.extend(_module_members(top))


def _add_package_reach(top: str, found: set[str], stack: list[Any]) -> None:
    """Add what walking a newly reached local package reaches (cached: `_package_reach`)."""
    found |= _package_reach(top)


_reach_cache: dict[str, tuple[tuple[tuple[int, int, int], ...], frozenset[str]]] = {}
_modules_cache: dict[str, tuple[int, list[types.ModuleType]]] = {}


def _package_reach(top: str) -> frozenset[str]:
    """The local top-level names reached by walking everything local package `top`'s
    loaded modules define (`top` included). Walking them is most of what shipping costs
    per call (a user's package can be large), so the answer is kept while every package
    it names still has the same modules holding the same objects."""
    cached = _reach_cache.get(top)
    if cached is not None and cached[0] == _state(cached[1]):
        return cached[1]
    reach = frozenset(_walk(_module_members(top), {top}, _add_members))
    _reach_cache[top] = (_state(reach), reach)
    return reach


def _state(tops: Iterable[str]) -> tuple[tuple[int, int, int], ...]:
    """What the loaded modules of packages `tops` hold, cheaply: a new module, a new
    name or a name bound to another object changes it."""
    return tuple(
        (id(module), len(namespace), sum(map(id, namespace.values())))
        for top in sorted(tops)
        for module in _package_modules(top)
        for namespace in (vars(module),)
    )


def _package_modules(top: str) -> list[types.ModuleType]:
    """The loaded modules of package `top` (looked up again when any module loads)."""
    size = len(sys.modules)
    cached = _modules_cache.get(top)
    if cached is None or cached[0] != size:
        modules = [
            m
            for name, m in list(sys.modules.items())
            if m is not None and (name == top or name.startswith(top + "."))
        ]
        cached = _modules_cache[top] = (size, modules)
    return cached[1]


def _is_user_code(module_name: str | None) -> bool:
    """Only the user's code is walked; installed libraries are never traversed."""
    top = _top_level(module_name)
    return top == "__main__" or (top is not None and _is_local_top_level(top))


def _module_members(top: str) -> list[Any]:
    """Everything defined in (or imported into) a local package's loaded modules."""
    kinds = types.ModuleType | types.FunctionType | type
    return [v for m in _package_modules(top) for v in vars(m).values() if isinstance(v, kinds)]


def _function_references(func: types.FunctionType) -> list[Any]:
    refs: list[Any] = []
    names = _code_names(func.__code__)
    g = func.__globals__
    refs.extend(g[n] for n in names if n in g)
    if func.__closure__:
        for cell in func.__closure__:
            try:
                refs.append(cell.cell_contents)
            except ValueError:  # empty cell
                pass
    refs.extend(func.__defaults__ or ())
    refs.extend((func.__kwdefaults__ or {}).values())
    return refs


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def ship_by_value(*roots: Any) -> set[str]:
    """Register every local module reachable from `roots` to be pickled by value."""
    modules = local_modules_of(roots)
    for name in modules - _registered:
        cloudpickle.register_pickle_by_value(sys.modules[name])
        _registered.add(name)
    return modules
