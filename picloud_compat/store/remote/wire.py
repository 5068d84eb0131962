"""How store calls cross a process or network boundary: msgpack, never pickle.

A remote store call is ``[method, args]`` and its answer ``[True, value]`` or
``[False, error name, message]``. The records of `store.records` travel as msgpack
extension values tagged with their class, so the far side rebuilds exactly the
dataclass it expects and nothing else: decoding cannot construct arbitrary objects,
which is the point of not using pickle across a trust boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from picloud_compat.errors import (
    AuthenticityError,
    CloudException,
    ConfigurationError,
    ConnectionFailed,
    InvalidCredentials,
    UnknownJobError,
)
from picloud_compat.store.records import (
    Account,
    ChunkRef,
    Claim,
    ClaimedJob,
    KillRequest,
    MissingFunction,
    Notice,
    Outcome,
    QueueService,
    Submission,
    WorkerInfo,
    WorkerLoss,
)

RECORDS: tuple[type[Any], ...] = (
    ChunkRef,
    Submission,
    ClaimedJob,
    Claim,
    Outcome,
    Notice,
    WorkerLoss,
    KillRequest,
    WorkerInfo,
    Account,
    QueueService,
)
"""Record classes by extension code (their position): append only, never reorder; and
a record's new fields go last, with a default."""
_CODE = {cls: code for code, cls in enumerate(RECORDS)}
_FIELD_NAMES = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in RECORDS}
_TUPLE_FIELDS = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple"))
    for cls in RECORDS
}


class WireError(CloudException):
    """A message that does not decode to what the protocol allows."""


def _default(value: Any) -> Any:
    cls = type(value)
    code = _CODE.get(cls)
    if code is not None:
        return msgpack.ExtType(code, pack([getattr(value, n) for n in _FIELD_NAMES[cls]]))
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, range):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to a remote store")


def _ext_hook(code: int, data: bytes) -> Any:
    if not 0 <= code < len(RECORDS):
        raise WireError(f"unknown record type {code}")
    cls = RECORDS[code]
    values = unpack(data)
    if not isinstance(values, list):
        raise WireError(f"malformed {cls.__name__}")
    # Fields are only ever appended, with defaults: a peer a version apart (a gateway
    # upgraded before its clients) sends fewer values, or more, and is still understood.
    fields = dict(zip(_FIELD_NAMES[cls], values, strict=False))
    for name in _TUPLE_FIELDS[cls]:
        if isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    try:
        return cls(**fields)
    except TypeError:  # a field without a default is missing
        raise WireError(f"malformed {cls.__name__}") from None


def pack(value: Any) -> bytes:
    """`value` (plain data and store records) as msgpack."""
    # Text travels as the job made it, lone surrogates included (an undecodable file
    # name): the store on the far side escapes it, as it does for local callers.
    return msgpack.packb(value, default=_default, use_bin_type=True, unicode_errors="surrogatepass")


def unpack(data: bytes | memoryview) -> Any:
    """The value `pack` made; WireError for anything else."""
    try:
        return msgpack.unpackb(
            data,
            ext_hook=_ext_hook,
            raw=False,
            strict_map_key=False,
            unicode_errors="surrogatepass",
        )
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"undecodable message: {exc}") from None


ERRORS: dict[str, type[Exception]] = {
    "UnknownJobError": UnknownJobError,
    "InvalidCredentials": InvalidCredentials,
    "ConnectionFailed": ConnectionFailed,
    "ConfigurationError": ConfigurationError,
    "AuthenticityError": AuthenticityError,
    "MissingFunction": MissingFunction,
    "CloudException": CloudException,
}
"""Errors a remote store may raise on the caller's side, by name."""


def error_reply(exc: BaseException) -> list[Any]:
    """The answer for a call that raised `exc` (anything unlisted is a CloudException)."""
    name = type(exc).__name__
    if name not in ERRORS:
        name = "CloudException"
    if isinstance(exc, UnknownJobError):
        return [False, name, exc.jid]
    if isinstance(exc, CloudException):
        return [False, name, str(exc.parameter)]
    return [False, name, str(exc)]


def raise_error(name: str, detail: Any) -> None:
    """Raise on the caller's side what the far side's store raised."""
    cls = ERRORS.get(name, CloudException)
    if cls is UnknownJobError:
        raise UnknownJobError(detail)
    if cls is MissingFunction:
        raise MissingFunction(detail)
    if cls is InvalidCredentials:
        raise InvalidCredentials()
    raise cls(detail)
