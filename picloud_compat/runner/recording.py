"""`Recorder`: how a runner claims jobs and records their outcomes, and what it does
when the store fails it.

An unreachable store is waited for: claims for `OUTAGE_RETRY` seconds, outcomes for
the longer `OUTCOME_RETRY` (those jobs ran, and running them again is what an outage
must not cost). A batch of outcomes the store refuses for another reason is recorded
job by job, so one outcome that cannot be saved fails alone. Outcomes followed by a
claim travel with it (`advance`): a runner going from one slow job to the next pays
one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from picloud_compat.errors import ConnectionFailed
from picloud_compat.runner.outages import OUTCOME_RETRY, retrying
from picloud_compat.runner.outcomes import unsaveable
from picloud_compat.runner.state_file import RunnerIdentity
from picloud_compat.store.contract import RunnerStore
from picloud_compat.store.records import ChunkRef, Claim, Outcome

log = logging.getLogger("picloud.runner")

MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Argument bytes fetched per claim."""


class Recorder:
    """One job process's claims and outcomes (see module doc)."""

    def __init__(self, store: RunnerStore, identity: RunnerIdentity) -> None:
        self.store = store
        self.identity = identity

    def claim(
        self, chunk: ChunkRef, outcomes: list[Outcome], start: int, max_jobs: int, token: str
    ) -> tuple[Claim, bool]:
        """Claim up to `max_jobs` jobs of `chunk` from `start` under `token`, recording
        `outcomes` in the same round trip; and whether that ended the chunk (outcomes
        carried, nothing claimed). Refused outcomes are recorded the careful way
        (`finish`), then the jobs claimed."""
        me = self.identity
        if outcomes:
            try:
                claim = retrying(
                    self.store.advance,
                    chunk,
                    outcomes,
                    start,
                    max_jobs,
                    MAX_BATCH_BYTES,
                    me.worker,
                    me.warden,
                    token,
                    patience=OUTCOME_RETRY,
                )
                return claim, not claim.jobs
            except ConnectionFailed:
                raise
            except Exception:
                self.finish(chunk, outcomes)
        claim = retrying(
            self.store.claim, chunk, start, max_jobs, MAX_BATCH_BYTES, me.worker, me.warden, token
        )
        return claim, False

    def finish(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        end: bool = False,
        ran_all: bool = False,
    ) -> None:
        """Record `outcomes` (and with `end`, end the chunk: `RunnerStore.finish`)."""
        if not (outcomes or end):
            return
        worker = self.identity.worker
        try:
            retrying(
                self.store.finish,
                chunk,
                outcomes,
                worker,
                end=end,
                ran_all=ran_all,
                patience=OUTCOME_RETRY,
            )
        except ConnectionFailed:
            raise
        except Exception:
            for outcome in outcomes:
                self._save_alone(chunk, outcome)
            if end:
                retrying(self.store.finish, chunk, [], worker, end=True, ran_all=ran_all)

    def unclaim(self, chunk: ChunkRef, jids: list[int], token: str) -> None:
        """Give back claimed jobs that never started."""
        if jids:
            retrying(self.store.unclaim, chunk, jids, token)

    def _save_alone(self, chunk: ChunkRef, outcome: Outcome) -> None:
        """Record one outcome; if the store refuses it, record the failure to save it."""
        worker = self.identity.worker
        try:
            retrying(self.store.finish, chunk, [outcome], worker, end=False)
        except ConnectionFailed:
            raise
        except Exception:
            log.exception("job %s/%s: its outcome was refused", chunk.tenant, outcome.jid)
            retrying(self.store.finish, chunk, [unsaveable(outcome)], worker, end=False)
