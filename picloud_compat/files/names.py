"""Validation of `cloud.files` names: a tenant can never step outside its own space.

Names are relative, '/'-separated paths. Refused with `ValueError`: empty names, names
over 1,024 bytes, absolute paths, '.' or '..' segments, empty segments ('a//b',
trailing '/'), backslashes, NUL, and other control characters. Because nothing is
normalised afterwards, a valid name maps to exactly one key under the tenant's prefix.
"""

from __future__ import annotations

MAX_NAME_BYTES = 1024
MAX_FILE_SIZE = 5 * 1024**3  # 5 GB, S3's single-object ceiling for a PUT and PiCloud's limit


def validate_name(name: object) -> str:
    """`name` unchanged if it is a safe file name (see the module doc), else an error."""
    if not isinstance(name, str):
        raise TypeError(f"file name must be a string, got {name!r}")
    if not name:
        raise ValueError("file name must not be empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"file name is longer than {MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127 or c == "\\"]
    if bad:
        raise ValueError(f"file name {name!r} contains a forbidden character {bad[0]!r}")
    if name.startswith("/"):
        raise ValueError(f"file name {name!r} must be relative (no leading '/')")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"file name {name!r} has an empty, '.' or '..' path segment")
    return name


def validate_prefix(prefix: object) -> str:
    """A listing prefix: like a name, but may be empty or end with '/'."""
    if prefix is None or prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {prefix!r}")
    validate_name(prefix.rstrip("/") or "x")
    return prefix
