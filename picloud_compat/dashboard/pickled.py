"""A short, safe description of a pickle, read without unpickling it.

The dashboard shows a job's arguments, but unpickling them in the gateway would run the
tenant's code there (a pickle can call anything). `pickletools.genops` only *parses*
opcodes, so this module rebuilds a display string from them: literals as `repr`,
containers as brackets, and any object built by reference to a class or function as
``module.name(…)``. Nothing is imported and nothing is called.
"""

from __future__ import annotations

import pickletools
from typing import Any

MAX_TEXT = 240
"""Characters of a summary; longer ones end in an ellipsis."""
_MAX_ITEMS = 8  # elements of a container shown before "…"
_MAX_OPS = 20_000  # opcodes read: a huge pickle is summarised from its beginning
_MAX_NODES = 2_000  # values visited while writing: memo references make a tiny pickle a
# deep shared graph (``x = [x] * 8`` ten times), which must not cost exponential time


class _Mark:
    """The stack marker MARK pushes."""


class _Built:
    """An object the pickle builds from a global (a class or a function)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{self.name}(…)"


class _Global:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class _Bytes:
    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"<{self.size} bytes>"


class _SetItems(list[Any]):
    """A set's or frozenset's items, kept unhashed (they may be lists)."""


class _Key:
    """An unhashable dict key (a list), kept as it is for display."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Budget:
    """Values a summary may still visit."""

    def __init__(self) -> None:
        self.left = _MAX_NODES


class _Opaque:
    def __repr__(self) -> str:
        return "…"


_LITERALS = {
    "NONE": None,
    "NEWTRUE": True,
    "NEWFALSE": False,
}
_TUPLE_SIZES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def describe_arguments(payload: bytes | memoryview) -> str:
    """``(args…, key=value…)`` of a job's sealed-and-opened ``(args, kwargs)`` pickle."""
    value, budget = _replay(payload), _Budget()
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        parts = [_show(a, budget) for a in value[0][:_MAX_ITEMS]]
        if len(value) > 1 and isinstance(value[1], dict):
            items = list(value[1].items())[:_MAX_ITEMS]
            parts += [f"{k}={_show(v, budget)}" for k, v in items]  # str keys
        return _clip("(" + ", ".join(parts) + ")")
    return _clip(_show(value, budget))


def describe(payload: bytes | memoryview) -> str:
    """Any pickled value, e.g. a result."""
    return _clip(_show(_replay(payload), _Budget()))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _show(value: Any, budget: _Budget) -> str:
    budget.left -= 1
    if budget.left < 0:
        return "…"
    if isinstance(value, _SetItems):
        return "{" + _items(value, budget) + "}"
    if isinstance(value, list):
        return "[" + _items(value, budget) + "]"
    if isinstance(value, tuple):
        return "(" + _items(value, budget) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        items = list(value.items())[:_MAX_ITEMS]
        pairs = [f"{_key(k, budget)}: {_show(v, budget)}" for k, v in items]
        more = ", …" if len(value) > _MAX_ITEMS else ""
        return "{" + ", ".join(pairs) + more + "}"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:60]) + "…"
    if isinstance(value, bytes | int | float | complex | bool | str | type(None)):
        return repr(value)
    return repr(value) if isinstance(value, _Built | _Global | _Bytes | _Opaque) else "…"


def _key(key: Any, budget: _Budget) -> str:
    return _show(key.value if isinstance(key, _Key) else key, budget)


def _items(values: list[Any] | tuple[Any, ...], budget: _Budget) -> str:
    shown = ", ".join(_show(v, budget) for v in values[:_MAX_ITEMS])
    return shown + (", …" if len(values) > _MAX_ITEMS else "")


def _replay(payload: bytes | memoryview) -> Any:
    """Run the pickle machine's stack with stand-ins instead of imports and calls."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(bytes(payload))):
            if count > _MAX_OPS:
                break
            if op.name == "STOP":
                break
            _step(op.name, arg, stack, memo)
    except Exception:  # a pickle this reader does not follow: show what was read
        pass
    return next((v for v in stack if not isinstance(v, _Mark)), _Opaque())


def _pop_mark(stack: list[Any]) -> list[Any]:
    for i in range(len(stack) - 1, -1, -1):
        if isinstance(stack[i], _Mark):
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise ValueError("no mark")


def _step(name: str, arg: Any, stack: list[Any], memo: dict[int, Any]) -> None:  # noqa: C901
    if name in _LITERALS:
        stack.append(_LITERALS[name])
    elif name.startswith(("BININT", "INT", "LONG", "BINFLOAT", "FLOAT")) or name in (
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    ):
        stack.append(arg)
    elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
        stack.append(_Bytes(len(arg)))
    elif name == "NEXT_BUFFER":
        stack.append(_Bytes(0))
    elif name in _TUPLE_SIZES:
        size = _TUPLE_SIZES[name]
        items = stack[len(stack) - size :] if size else []
        del stack[len(stack) - size :]
        stack.append(tuple(items))
    elif name == "TUPLE":
        stack.append(tuple(_pop_mark(stack)))
    elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
        stack.append({"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": _SetItems}[name]())
    elif name == "MARK":
        stack.append(_Mark())
    elif name in ("LIST", "DICT", "FROZENSET"):
        items = _pop_mark(stack)
        if name == "LIST":
            stack.append(items)
        elif name == "DICT":
            stack.append(_pairs(items))
        else:
            stack.append(_SetItems(items))
    elif name == "APPEND":
        item = stack.pop()
        stack[-1].append(item)
    elif name in ("APPENDS", "ADDITEMS"):
        items = _pop_mark(stack)
        stack[-1].extend(items)
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        stack[-1][_hashable(key)] = value
    elif name == "SETITEMS":
        pairs = _pairs(_pop_mark(stack))
        stack[-1].update(pairs)
    elif name in ("MEMOIZE",):
        memo[len(memo)] = stack[-1]
    elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
        memo[int(arg)] = stack[-1]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo[int(arg)])
    elif name == "GLOBAL":
        stack.append(_Global(str(arg).replace(" ", ".")))
    elif name == "STACK_GLOBAL":
        qualname, module = stack.pop(), stack.pop()
        stack.append(_Global(f"{module}.{qualname}"))
    elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"):
        _build(name, arg, stack)
    elif name == "BUILD":
        stack.pop()  # the state; the object keeps its constructor's name
    elif name in ("POP",):
        stack.pop()
    elif name == "POP_MARK":
        _pop_mark(stack)
    elif name == "DUP":
        stack.append(stack[-1])
    elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
        pass
    else:  # PERSID and the like: a value this reader cannot name
        stack.append(_Opaque())


def _build(name: str, arg: Any, stack: list[Any]) -> None:
    if name == "INST":
        _pop_mark(stack)
        stack.append(_Built(str(arg).replace(" ", ".")))
        return
    if name == "OBJ":
        items = _pop_mark(stack)
        callee = items[0] if items else _Opaque()
    elif name == "NEWOBJ_EX":
        stack.pop()
        stack.pop()
        callee = stack.pop()
    else:
        stack.pop()  # the arguments tuple
        callee = stack.pop()
    stack.append(_Built(getattr(callee, "name", "object")))


def _pairs(items: list[Any]) -> dict[Any, Any]:
    return {_hashable(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return _Key(key)  # shown later, within the budget (never repr'd here)
    return key
