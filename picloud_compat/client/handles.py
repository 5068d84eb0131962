"""What `cloud.call` and `cloud.map` return: an int and a list that Jupyter shows as cards.

PiCloud returned a plain int and a plain list, and user code prints, compares, hashes,
stores and serializes them; `JobId` (an ``int``) and `JobList` (a ``list`` of plain ints)
keep all of that unchanged: same ``repr`` and ``str``, equality, hashing, JSON, and
arithmetic giving plain ints. They also remember the client that made them, so a
notebook shows the job's status and result (`_repr_html_`, IPython's rich display
protocol; the store is read at display time, see `cards`).

That memory never travels: pickling (pickle, cloudpickle into jobs, the simulator's
process boundary) gives a plain int or list, and so does anything derived from a
`JobList` (a slice, ``copy()``, ``+``, ``*``): only what `cloud.map` returned is a card.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from picloud_compat.client.cards import CardSource
    from picloud_compat.jobspec import JobSpec


class JobId(int):
    """A jid: an int, shown in Jupyter as a card with the job's status and result."""

    _client: CardSource | None
    _spec: JobSpec | None

    def __new__(
        cls, jid: int, client: CardSource | None = None, spec: JobSpec | None = None
    ) -> JobId:
        self = super().__new__(cls, jid)
        # int subclasses cannot have __slots__: these two live in a small __dict__
        self._client = client  # whose store to read (None: the current client's)
        self._spec = spec  # function name and label, known at submit: no read for them
        return self

    def __reduce__(self) -> tuple[type[int], tuple[int]]:
        """Pickles as a plain int: the client stays in this process."""
        return int, (int(self),)

    def __copy__(self) -> JobId:
        return self  # immutable, like an int

    def __deepcopy__(self, memo: dict[int, Any]) -> JobId:
        return self

    def _repr_html_(self) -> str:
        from picloud_compat.client.cards import job_card

        return job_card(int(self), self._client, self._spec)


class JobList(list[int]):
    """The jids of a `cloud.map`: a list of plain ints, shown in Jupyter as status counts
    with a progress bar (read from a bounded sample of a long list, see `cards`)."""

    __slots__ = ("_client", "_spec")

    def __init__(
        self,
        jids: Iterable[int] = (),
        client: CardSource | None = None,
        spec: JobSpec | None = None,
    ) -> None:
        super().__init__(jids)
        self._client = client
        self._spec = spec

    def __reduce__(self) -> tuple[type[list[int]], tuple[()], None, Iterator[int]]:
        """Pickles (and copies) as a plain list, without an intermediate copy."""
        return list, (), None, iter(self)

    def _repr_html_(self) -> str:
        from picloud_compat.client.cards import list_card

        return list_card(self, getattr(self, "_client", None), getattr(self, "_spec", None))
