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
from collections.abc import Iterable
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
    found: set[str] = set()
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            top = _top_level(obj.__name__)
            if top and top not in found and _is_local_top_level(top):
                found.add(top)
                stack.extend(_module_members(top))
            continue
        if isinstance(obj, types.FunctionType):
            _note(obj.__module__, found, stack)
            if _is_user_code(obj.__module__):
                stack.extend(_function_references(obj))
        elif isinstance(obj, type):
            _note(obj.__module__, found, stack)
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


def _is_user_code(module_name: str | None) -> bool:
    """Only the user's code is walked; installed libraries are never traversed."""
    top = _top_level(module_name)
    return top == "__main__" or (top is not None and _is_local_top_level(top))


def _note(module_name: str | None, found: set[str], stack: list[Any]) -> None:
    top = _top_level(module_name)
    if top and top not in found and _is_local_top_level(top):
        found.add(top)
        stack.extend(_module_members(top))


def _module_members(top: str) -> list[Any]:
    """Everything defined in (or imported into) a local package's loaded modules."""
    members: list[Any] = []
    for name, module in list(sys.modules.items()):
        if module is not None and (name == top or name.startswith(top + ".")):
            members.extend(
                v
                for v in vars(module).values()
                if isinstance(v, types.ModuleType | types.FunctionType | type)
            )
    return members


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
