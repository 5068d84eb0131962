"""Turning functions, arguments and results into signed bytes, and back.

The only module that imports cloudpickle for payloads. Three rules live here:
- sizes: function, argument tuple and result are each capped by `max_transmit_data`
  (PiCloud's setting), checked before anything is written;
- errors: an unpicklable object raises `CloudPicklingError` naming *which* argument
  (and the innermost object found) instead of cloudpickle's bare TypeError;
- authenticity: every blob is sealed with `Signer` and opened before `pickle.loads`;
- where: with an `offload`, big sealed arguments and results travel through S3 and the
  job store keeps a reference (`files.blobs`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import cloudpickle

from picloud_compat.errors import PICKLE_HINT, CloudException, CloudPicklingError
from picloud_compat.settings import STORE_BLOB_CEILING

if TYPE_CHECKING:
    from picloud_compat.files.blobs import BlobOffload
from picloud_compat.shipping import ship_by_value
from picloud_compat.signing import ENVELOPE_SIZE, Signer

PROTOCOL = 5
# Values whose pickle cannot reference code: plain `pickle` is exact for them, and faster.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})
_SMALL = 64 * 1024  # below this, one copy costs less than the zero-copy machinery


class Codec:
    """Seals and opens one tenant's functions, arguments and results."""

    def __init__(
        self,
        signer: Signer,
        max_transmit_data: int,
        offload: BlobOffload | None = None,
        plain_only: bool = False,
    ) -> None:
        """`plain_only`: results load as plain data or not at all (for servers such as
        the gateway, which hold secrets and must never run a tenant's pickle)."""
        self.signer = signer
        self.limit = max_transmit_data
        self.offload = offload
        self.plain_only = plain_only
        self._functions: dict[str, Any] = {}  # sha -> loaded function (workers)

    # -- client side -------------------------------------------------------------

    def function(self, func: Callable[..., Any]) -> tuple[str, bytes]:
        """Seal `func` (and the user's local modules it needs) by value.

        Returns (sha256 of the pickle, sealed blob). The sha names the blob in Redis
        so a map of 10,000 jobs stores the function once.
        """
        ship_by_value(func)
        try:
            raw = cloudpickle.dumps(func, protocol=PROTOCOL)
        except Exception as exc:
            raise _pickling_error(f"function {_describe(func)}", func, exc) from exc
        self._check_size(len(raw), f"function {_describe(func)}", offloadable=False)
        return hashlib.sha256(raw).hexdigest(), self.signer.seal(raw)

    def arguments(
        self, args: Sequence[Any], kwargs: dict[str, Any] | None = None, fast: int = 0
    ) -> bytes | memoryview:
        """Seal one job's (args, kwargs); None kwargs keeps the pickle small.

        Big pickles come back as a view of the buffer they were written to (no copy).
        """
        payload = (tuple(args), kwargs) if kwargs else (tuple(args),)
        if not kwargs and all(type(a) in _PLAIN for a in args):
            # Nothing cloudpickle would add: the stdlib pickler gives the same bytes, faster.
            raw = pickle.dumps(payload, protocol=PROTOCOL)
            if len(raw) <= _SMALL:
                self._check_size(len(raw), "arguments", offloadable=False)
                return self.signer.seal(raw)  # small: never offloaded
            fast = 2
        pickler = pickle.Pickler if fast >= 2 else cloudpickle.Pickler
        try:
            sealed = self.signer.seal_pickle(lambda f: pickler(f, protocol=PROTOCOL).dump(payload))
        except Exception as exc:
            raise _argument_error(args, kwargs or {}, exc) from exc
        self._check_size(len(sealed) - ENVELOPE_SIZE, "arguments")
        return self.offload.outgoing(sealed) if self.offload else sealed

    def ship_argument_types(self, values: Iterable[Any]) -> None:
        """Instances of the user's own classes need those classes shipped too."""
        ship_by_value(*{type(v) for v in values})

    # -- worker side -------------------------------------------------------------

    def result(self, value: Any, fast: int = 0) -> bytes:
        """Seal a job's return value; raises CloudPicklingError if it cannot travel."""
        try:
            raw = self._dumps(value, fast)
        except Exception as exc:
            raise _pickling_error("the job's return value", value, exc) from exc
        self._check_size(len(raw), "result")
        sealed = self.signer.seal(raw)
        return bytes(self.offload.outgoing(sealed)) if self.offload else sealed

    def load_function(self, sha: str, blob: bytes | None) -> Any:
        """The function sealed in `blob`, cached by `sha` (the blob may be None if cached)."""
        cached = self._functions.get(sha)
        if cached is not None:
            return cached
        if blob is None:
            raise CloudException(f"function {sha[:12]} is missing from the job store")
        func = pickle.loads(self.signer.open(blob, "function"))
        if len(self._functions) > 256:
            self._functions.clear()
        self._functions[sha] = func
        return func

    def has_function(self, sha: str) -> bool:
        """Whether function `sha` is cached, so its blob need not be fetched."""
        return sha in self._functions

    def load_arguments(self, blob: bytes | memoryview) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A job's (args, kwargs) from its sealed blob."""
        payload = pickle.loads(self.signer.open(self._fetched(blob), "arguments"))
        return (payload[0], payload[1]) if len(payload) == 2 else (payload[0], {})

    def load(self, blob: bytes | memoryview, what: str = "result") -> Any:
        """Open and unpickle a sealed blob; `what` names it in errors."""
        payload = self.signer.open(self._fetched(blob), what)
        if self.plain_only:
            return _PlainUnpickler(io.BytesIO(payload)).load()
        return pickle.loads(payload)

    def _fetched(self, blob: bytes | memoryview) -> bytes | memoryview:
        """The blob itself, or the one its reference names (offloaded to S3)."""
        return self.offload.incoming(blob) if self.offload else blob

    # -- helpers -----------------------------------------------------------------

    def _dumps(self, obj: Any, fast: int) -> bytes:
        if fast >= 2 or type(obj) in _PLAIN:
            return pickle.dumps(obj, protocol=PROTOCOL)
        data: bytes = cloudpickle.dumps(obj, protocol=PROTOCOL)  # cloudpickle is untyped
        return data

    def _check_size(self, size: int, what: str, offloadable: bool = True) -> None:
        """Refuse, before anything is written, what exceeds ``max_transmit_data``, or
        what would have to sit in the job store and is too big for it."""
        if size > self.limit:
            raise CloudException(
                f"Excessive data ({size} bytes) transmitted in {what}: the limit is "
                f"{self.limit} bytes (max_transmit_data). Store large data with cloud.files "
                "and pass its name instead."
            )
        offloaded = offloadable and self.offload is not None and size >= self.offload.threshold
        if size > STORE_BLOB_CEILING and not offloaded:
            where = (
                "functions always are"
                if not offloadable
                else "S3 offload needs a team cluster with S3 configured"
            )
            raise CloudException(
                f"Excessive data ({size} bytes) transmitted in {what}: the job store holds "
                f"at most {STORE_BLOB_CEILING} bytes per blob, and this one would be kept "
                f"there ({where}). Store large data with cloud.files and pass its name "
                "instead."
            )


class _PlainUnpickler(pickle.Unpickler):
    """Loads what JSON could carry (and sets, bytes, complex): a pickle naming any other
    class or function is refused before anything is looked up, so nothing runs."""

    _ALLOWED = frozenset(
        {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray")}
        | {("builtins", "complex")}
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise CloudPicklingError(
            f"the result holds {module}.{name}: this server loads plain data only"
        )


def _describe(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return name or type(obj).__name__


def _argument_error(args: Sequence[Any], kwargs: dict[str, Any], exc: Exception) -> Exception:
    for index, value in enumerate(args):
        if not _picklable(value):
            return _pickling_error(f"argument {index}", value, exc)
    for name, value in kwargs.items():
        if not _picklable(value):
            return _pickling_error(f"keyword argument {name!r}", value, exc)
    return _pickling_error("the arguments", args, exc)


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value, protocol=PROTOCOL)
        return True
    except Exception:
        return False


def _innermost_unpicklable(value: Any, depth: int = 0) -> Any:
    """Dig into containers and attributes for the object that really fails."""
    if depth > 6:
        return value
    children: Iterable[Any]
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list | tuple | set | frozenset):
        children = value
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = vars(value).values()
    else:
        return value
    for child in children:
        if not _picklable(child):
            return _innermost_unpicklable(child, depth + 1)
    return value


def _pickling_error(what: str, value: Any, exc: Exception) -> CloudPicklingError:
    culprit = _innermost_unpicklable(value)
    detail = f"{what} cannot be pickled: {type(exc).__name__}: {exc}"
    if culprit is not value:
        detail += f" (the unpicklable object is {_safe_repr(culprit)} inside {_safe_repr(value)})"
    else:
        detail += f" (object: {_safe_repr(value)})"
    return CloudPicklingError(f"{detail}\n{PICKLE_HINT}")


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} with a failing repr>"
    return text if len(text) <= 120 else text[:117] + "..."
