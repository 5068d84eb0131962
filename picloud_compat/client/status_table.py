"""Finished statuses by jid in one byte each: what a client remembers of a big map.

A dict of a million jids to statuses costs about 100 MB in CPython (entries, hashes and
a million int objects). Jids are dense per API key, so a table of 64 Ki-jid pages with
one status code per byte holds the same in 1 MB, which is what keeps a client waiting on
a 1,000,000-job map small. It behaves as a ``MutableMapping[int, str]``.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from picloud_compat.status import JobStatus

_PAGE_BITS = 16
_PAGE = 1 << _PAGE_BITS
_CODES: tuple[str, ...] = ("", *(s.value for s in JobStatus))
_CODE_OF = {name: code for code, name in enumerate(_CODES) if name}


class StatusTable(MutableMapping[int, str]):
    """jid -> status, one byte per jid in pages allocated as jids appear."""

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}
        self._count = 0

    def _code(self, jid: int) -> int:
        """`jid`'s status code (0: none remembered)."""
        page = self._pages.get(jid >> _PAGE_BITS)
        return page[jid & (_PAGE - 1)] if page is not None and jid >= 0 else 0

    def __getitem__(self, jid: int) -> str:
        code = self._code(jid)
        if not code:
            raise KeyError(jid)
        return _CODES[code]

    def get(self, jid: int, default: str | None = None) -> str | None:  # type: ignore[override]
        """The status of `jid`, else `default`: what waiters ask of every pending jid, so
        without the KeyError that `Mapping.get` would raise and catch for each."""
        code = self._code(jid)
        return _CODES[code] if code else default

    def __setitem__(self, jid: int, status: str) -> None:
        code = _CODE_OF.get(status)
        if code is None or jid < 0:
            raise ValueError(f"cannot remember status {status!r} of jid {jid!r}")
        page = self._pages.get(jid >> _PAGE_BITS)
        if page is None:
            page = self._pages[jid >> _PAGE_BITS] = bytearray(_PAGE)
        offset = jid & (_PAGE - 1)
        self._count += not page[offset]
        page[offset] = code

    def __delitem__(self, jid: int) -> None:
        self[jid]  # KeyError if absent
        self._pages[jid >> _PAGE_BITS][jid & (_PAGE - 1)] = 0
        self._count -= 1

    def __contains__(self, jid: object) -> bool:
        if not isinstance(jid, int) or jid < 0:
            return False
        page = self._pages.get(jid >> _PAGE_BITS)
        return page is not None and page[jid & (_PAGE - 1)] != 0

    def __iter__(self) -> Iterator[int]:
        for number in sorted(self._pages):
            page = self._pages[number]
            base = number << _PAGE_BITS
            yield from (base + i for i, code in enumerate(page) if code)

    def __len__(self) -> int:
        return self._count

    @property
    def pages(self) -> int:
        """Pages held (64 KiB each)."""
        return len(self._pages)

    def drop_oldest_page(self) -> None:
        """Forget the lowest page of jids (a long-lived client's oldest jobs)."""
        if self._pages:
            page = self._pages.pop(min(self._pages))
            self._count -= sum(1 for code in page if code)
