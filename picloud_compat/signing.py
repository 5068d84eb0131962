"""HMAC envelopes for every pickle the platform stores.

Unpickling is code execution, and anyone who can write to Redis could plant a pickle.
So every blob (function, arguments, result, exception) is wrapped as::

    MAGIC | HMAC-SHA256(tenant key, header + payload)[:16] | len(header) | header | payload

and `open()` checks the MAC *before* anything is unpickled. The MAC is truncated to
128 bits (as RFC 2104 and NIST SP 800-107 allow; forging one is still a 2**128 guess per
try): 16 bytes less per blob keeps a small job's arguments under Redis's 64-byte limit
for compact hash encoding, which is half of what a finished job costs in Redis. Blobs
sealed before (``PCS1``, the full 32 bytes) still open. The tenant key is derived
from the cluster's shared `signing_key`, so a blob signed for one API key does not
verify under another; clients may hold just their tenant's key (`tenant_key`). The
header names the Python and cloudpickle versions, because cloudpickle payloads only
load under the same versions.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import sys
from collections.abc import Callable

import cloudpickle

from picloud_compat.errors import AuthenticityError, CloudPicklingError

MAGIC = b"PCS2"
_MAC_LEN = 16
_LEGACY = {b"PCS1": 32}  # envelopes of earlier versions that open() still reads
_RUNTIME = f"py{sys.version_info[0]}.{sys.version_info[1]}|cp{cloudpickle.__version__}".encode()


RUNTIME = _RUNTIME.decode()
"""This process's Python and cloudpickle versions: pickles only load under the same."""
_HEADER = bytes([len(_RUNTIME)]) + _RUNTIME
ENVELOPE_SIZE = len(MAGIC) + _MAC_LEN + len(_HEADER)
"""Bytes a sealed blob adds to its payload."""


def tenant_key(secret: str | bytes, tenant: str) -> bytes:
    """The tenant's own signing key, derived from the cluster's shared secret. Workers
    derive it; a client may be given just this (``tenant_key``), never the secret."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < 16:
        raise ValueError("signing_key must be at least 16 bytes")
    return hmac.new(raw, b"picloud-tenant:" + tenant.encode(), hashlib.sha256).digest()


class _HmacSha256:
    """HMAC-SHA256 under one key, with the key's padded blocks hashed once (RFC 2104's
    precomputation): each MAC then copies two hash states instead of setting up an
    HMAC. Every job's arguments and result are opened and sealed, and OpenSSL 3's
    one-shot HMAC takes twice as long for these small blobs. Same bytes as
    `hmac.digest(key, msg, "sha256")`."""

    def __init__(self, key: bytes) -> None:
        if len(key) > hashlib.sha256().block_size:
            key = hashlib.sha256(key).digest()
        block = key.ljust(hashlib.sha256().block_size, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, msg: bytes | memoryview) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class Signer:
    """Seals and opens blobs with one tenant's key, derived from the shared secret."""

    def __init__(self, secret: str | bytes, tenant: str) -> None:
        self.tenant = tenant
        self._mac = _HmacSha256(tenant_key(secret, tenant))

    @classmethod
    def from_tenant_key(cls, key: bytes, tenant: str) -> Signer:
        """A signer holding only `tenant`'s key (what a client without the shared secret
        has): it can seal and open that tenant's blobs and no one else's."""
        if len(key) != 32:
            raise ValueError("a tenant key is 32 bytes (64 hex digits)")
        signer = cls.__new__(cls)
        signer.tenant = tenant
        signer._mac = _HmacSha256(key)
        return signer

    def seal(self, payload: bytes) -> bytes:
        """`payload` in its signed envelope."""
        body = _HEADER + payload
        return MAGIC + self._mac.digest(body)[:_MAC_LEN] + body

    def seal_pickle(self, dump: Callable[[io.BytesIO], None]) -> memoryview:
        """Seal what `dump` writes, without copying it: the envelope is reserved first,
        the pickle written after it, and the MAC patched in. For megabyte arguments
        this saves a full copy over `seal(pickle.dumps(...))`."""
        buf = io.BytesIO()
        buf.write(MAGIC + bytes(_MAC_LEN) + _HEADER)
        dump(buf)
        view = buf.getbuffer()
        body_start = len(MAGIC) + _MAC_LEN
        mac = self._mac.digest(view[body_start:])[:_MAC_LEN]
        view[len(MAGIC) : body_start] = mac
        return view

    def open(self, blob: bytes | memoryview, what: str = "payload") -> memoryview:
        """Return the payload of `blob` if its MAC verifies; raise otherwise."""
        view = memoryview(blob)
        magic = bytes(view[: len(MAGIC)])
        mac_len = _MAC_LEN if magic == MAGIC else _LEGACY.get(magic, 0)
        if not mac_len or len(view) < len(MAGIC) + mac_len + 1:
            raise AuthenticityError(f"refusing to unpickle {what}: it carries no signature")
        mac_end = len(MAGIC) + mac_len
        body = view[mac_end:]
        expected = self._mac.digest(body)[:mac_len]
        if not hmac.compare_digest(expected, view[len(MAGIC) : mac_end]):
            raise AuthenticityError(
                f"refusing to unpickle {what}: its signature does not match "
                "(tampered, or signed with another key or tenant)"
            )
        header_len = body[0]
        header = bytes(body[1 : 1 + header_len])
        if header != _RUNTIME:
            raise CloudPicklingError(
                f"{what} was pickled under {header.decode(errors='replace')} but this process "
                f"runs {_RUNTIME.decode()}; client and workers need the same versions"
            )
        return body[1 + header_len :]
