"""`ChunkPass`: one run of a chunk by a runner, and how it claims ahead.

Between two slow jobs a runner must record one outcome and claim the next job. Done
in one round trip (`advance`), the process still idles for that trip before every
job. Claiming ahead removes the wait: while slow jobs follow each other, the runner
keeps its next job claimed, and as that job starts it sends "record the last outcome,
claim the one after" (`Recorder.send_ahead`), reading the reply when the job ends.

What claiming ahead must not break:

- kills: a claimed job killed before it starts must never start. The warden, asked
  to kill a job no process runs yet, freezes the process that claimed it and either
  finds it started (and kills the process) or writes a veto into its state file,
  which the runner reads after naming the job there and before starting it.
- stealing: a job claimed ahead cannot be stolen by an idle process, so the last job
  of a chunk is never claimed ahead: should the job before it be slow, an idle
  process takes it. At most one job waits behind a slow one.
- restarts: only restartable jobs are claimed ahead (a process lost with one claimed
  would fail a non-restartable job that never started).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from picloud_compat.runner.recording import Ahead, Recorder
from picloud_compat.store.records import ChunkRef, Claim, Outcome

log = logging.getLogger("picloud.runner")


@dataclass
class ChunkPass:
    """Where a run of `chunk` stands: what it claimed and has not recorded yet."""

    chunk: ChunkRef
    token: str
    recorder: Recorder
    index: int = 0  # the chunk's next job not claimed yet
    batch: int = 1  # how many jobs the next claim takes
    ran: int = 0
    claimed: int = 0
    pending: list[Outcome] = field(default_factory=list)  # outcomes not recorded yet
    oldest: float = 0.0  # when the oldest pending outcome's job started
    ahead: Ahead | None = None  # sent while the job running now started
    streaming: bool = False  # slow restartable jobs follow each other: claim ahead
    ended: bool = False  # an advance that claimed nothing ended the chunk

    def more(self, stolen: Claim | None) -> bool:
        """Whether jobs may be left to claim or run."""
        return stolen is not None or self.ahead is not None or self.index < self.chunk.count

    def next_claim(self, stolen: Claim | None) -> Claim:
        """The next jobs: `stolen` (a thief's steal claimed them), the claim sent ahead,
        or up to `batch` claimed now with the pending outcomes (one round trip)."""
        batch = self.batch
        if stolen is not None:
            claim = stolen
        elif self.ahead is not None:  # its reply is here: the job it ran beside ended
            claim, self.ahead = self.ahead.claim(), None
            if not claim.jobs and claim.next_index < self.chunk.count:
                # it only recorded (the last job stays stealable): claim it now
                self.index = claim.next_index
                claim, self.ended = self.recorder.claim(
                    self.chunk, self.pending, self.index, batch, self.token
                )
                self.pending = []
        else:
            claim, self.ended = self.recorder.claim(
                self.chunk, self.pending, self.index, batch, self.token
            )
            self.pending = []
        self.index = claim.next_index
        self.claimed += len(claim.jobs)
        return claim

    def send_ahead(self) -> None:
        """The job starting now is the last one claimed: send the pending outcomes and
        claim the job after it, unless that is the chunk's last (left for thieves)."""
        if not self.streaming or self.ahead is not None:
            return
        claim_next = 1 if self.chunk.count - self.index >= 2 else 0
        if self.pending or claim_next:
            self.ahead = self.recorder.send_ahead(
                self.chunk, self.pending, self.index, claim_next, self.token
            )
            self.pending = []

    def take_ahead(self) -> list[int]:
        """Jids the claim sent ahead took (the runner leaves without starting them)."""
        ahead, self.ahead = self.ahead, None
        if ahead is None:
            return []
        jids = [job.jid for job in ahead.claim().jobs]
        self.claimed -= len(jids)
        return jids

    def give_back_ahead(self) -> None:
        """Unclaim what the claim sent ahead took (the run ended early: an error)."""
        if self.ahead is None:
            return
        try:
            self.recorder.unclaim(self.chunk, self.take_ahead(), self.token)
        except Exception:  # the process is failing anyway: recovery requeues them
            log.exception("could not give back the job claimed ahead in %s", self.chunk.key)
