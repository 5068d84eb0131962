"""`OwnLeases`: a job process renews the leases of the chunks it runs, besides its warden.

The worker's main process (its warden) renews every running chunk's lease. Should that
process stall past the lease (swapping, a stopped process), the reaper would take a
job that is still running for lost: run it again elsewhere, or fail it. So while a job
runs, its own process renews too (from its output thread, `runner.output`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from picloud_compat.store.records import ChunkRef

LeaseRenewal = Callable[[Sequence[tuple[ChunkRef, str]], float], None]
"""`SupervisionStore.renew_leases`: (chunk, worker) pairs, seconds."""


class OwnLeases:
    """The chunks this process runs now (nested chunks stack), and their renewal."""

    def __init__(self, renew: LeaseRenewal | None, worker: str, seconds: float) -> None:
        """Without `renew` (the simulator, an executor) only the warden renews."""
        self._renew, self._worker, self._seconds = renew, worker, seconds
        self._held: list[ChunkRef] = []

    def hold(self, chunk: ChunkRef) -> None:
        self._held.append(chunk)

    def release(self) -> None:
        self._held.pop()

    def renew(self) -> None:
        """Extend the held chunks' leases; failures are left to the warden's renewal,
        which reports a store outage."""
        held = list(self._held)
        if held and self._renew is not None:
            try:
                self._renew([(c, self._worker) for c in held], self._seconds)
            except Exception:
                pass
