"""`ChunkRunner`: runs the jobs of one chunk message, in a job process.

Claims jobs a batch at a time (atomic in the store; a redelivered chunk skips what is
already claimed or finished), runs each through `execution.run_job`, and records
outcomes in batches so tiny jobs cost a fraction of a round trip each. Long jobs are
recorded as soon as they end, with the next claim, and their output is streamed while
they run. How claims and outcomes survive store failures is `recording.Recorder`'s.

The runner tells its *warden* what it is running through its state file
(`state_file.StateFile`), so the warden can renew the chunk's lease and kill exactly
the right attempt of the right job.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable

from picloud_compat.errors import CloudException
from picloud_compat.jobspec import JobSpec, SpecCache
from picloud_compat.runner.execution import JobContext, JobOutput, Loaded, run_job
from picloud_compat.runner.hygiene import CleanRoom, Leftovers, ProcessDamaged
from picloud_compat.runner.leases import LeaseRenewal, OwnLeases
from picloud_compat.runner.outages import retrying
from picloud_compat.runner.outcomes import joined, last_line
from picloud_compat.runner.output import OutputStreamer, run_in_fresh_process
from picloud_compat.runner.recording import Recorder
from picloud_compat.runner.slots import Cores, SlotLedger, holding
from picloud_compat.runner.state_file import (
    JobStateSink,
    RunnerIdentity,
    StateFile,
    drain_check,
)
from picloud_compat.serialization import Codec
from picloud_compat.settings import Settings
from picloud_compat.store.contract import RunnerStore
from picloud_compat.store.records import ChunkRef, Claim, ClaimedJob, Outcome, Settlement

log = logging.getLogger("picloud.runner")

MAX_BATCH = 256
"""Jobs claimed (and outcomes recorded) per round trip when jobs are tiny."""
FLUSH_AFTER = 0.02
"""Seconds a finished job's outcome may wait to share a round trip with others."""
TINY_JOB = 0.002
"""Jobs faster than this grow the claim batch; slower ones are recorded at once."""
RECHECK_CLAIMED = 0.005
"""Seconds after which the kill generation is read again before starting claimed jobs
(the jobs themselves are re-read only when it moved)."""


class ChunkRunner:
    """Runs chunks in this process; one instance per job process."""

    def __init__(
        self,
        store: RunnerStore,
        settings: Settings,
        codec_for: Callable[[str], Codec],
        identity: RunnerIdentity,
        state: JobStateSink | None = None,
        draining: Callable[[], bool] | None = None,
        cores: Cores | None = None,
        refusal: str | None = None,
        renew_leases: LeaseRenewal | None = None,
    ) -> None:
        """`state` is where the warden learns what runs (default: this process's file);
        `draining` says the worker is scaling in (default: a marker in the state dir);
        `cores` are the worker's slots (default: the slot files in the state dir);
        `renew_leases`, where given, renews the held chunks' leases while a job runs,
        besides the warden (`runner.leases`)."""
        self.store = store
        self.settings = settings
        self.codec_for = codec_for
        self.identity = identity
        self._specs = SpecCache(lambda t, sid: retrying(self.store.spec, t, sid))
        self._recorder = Recorder(store, identity)
        self._state = state if state is not None else StateFile(identity.state_dir)
        self._draining = draining or drain_check(identity.state_dir)
        self._cores = cores if cores is not None else SlotLedger(identity.state_dir)
        self._refusal = refusal  # every job fails with this (an environment that failed)
        self._leases = OwnLeases(renew_leases, identity.worker, settings.lease_seconds)
        self._streamer = OutputStreamer(store, self._leases.renew if renew_leases else None)
        self._output = JobOutput(settings.output_limit)  # reused: drained after each job
        self._room: CleanRoom | None = None  # made before the first job (the baseline)
        self._damage: list[str] = []
        self._depth = 0  # chunks running in this process now (helping nests them)
        self._failed: list[tuple[int, str]] = []
        self.unsettled: Settlement | None = None
        """A chunk's end left for the next store call to carry (`run`'s settle_later)."""
        self.failed: list[tuple[int, str]] = []
        """Jobs of the last outermost chunk that ended `error`: (jid, last line of the
        exception), for what Flower shows of the chunk."""

    def close(self) -> None:
        """This process stops running jobs."""
        self._state.close()

    def run(
        self, chunk: ChunkRef, stolen: tuple[str, Claim] | None = None, settle_later: bool = False
    ) -> int:
        """Run every still-queued job of `chunk` (a thief: the `stolen` claim made under
        its token, then on from there); return how many ran here. The outermost chunk
        (not one a job helps with) holds one of the worker's core slots.

        With `settle_later`, the chunk's last outcomes and its end are left in
        `unsettled` for the caller's next store call to carry (a thief's steal); the
        caller must `settle()` them if it makes none."""
        outermost = self._depth == 0
        if outermost:
            self._cores.enter_chunk()
        try:
            return self._run(chunk, stolen, settle_later and outermost)
        finally:
            if outermost:
                self._cores.leave_chunk()

    def settle(self) -> None:
        """Record what `run(settle_later=True)` left unsettled, if no steal carried it."""
        settlement, self.unsettled = self.unsettled, None
        if settlement is not None:
            self._recorder.finish(
                settlement.chunk, settlement.outcomes, end=True, ran_all=settlement.ran_all
            )

    def _run(self, chunk: ChunkRef, stolen: tuple[str, Claim] | None, settle_later: bool) -> int:
        token, first_claim = stolen or (secrets.token_hex(8), None)
        codec = self.codec_for(chunk.tenant)
        ck = chunk.key
        index, batch, ran, claimed = 0, 1, 0, 0
        ended = False  # an advance that claimed nothing ended the chunk
        pending: list[Outcome] = []
        oldest = 0.0
        self._state.push(ck)
        self._leases.hold(chunk)
        self._depth += 1
        if self._depth == 1:
            self._failed = []
        try:
            while first_claim is not None or index < chunk.count:
                if self._draining():
                    unstarted = [j.jid for j in first_claim.jobs] if first_claim else []
                    return self._hand_back(chunk, unstarted, pending, token, ran)
                # outcomes not recorded yet ride with the claim
                claim, ended = self._claim(chunk, pending, index, batch, token, first_claim)
                first_claim, pending = None, []
                index = claim.next_index
                generation = claim.kill_generation  # read with the claim, atomically
                claimed += len(claim.jobs)
                jobs = claim.jobs
                checked = time.perf_counter()
                position = 0
                while position < len(jobs):
                    job = jobs[position]
                    now = time.perf_counter()
                    if pending and now - oldest > FLUSH_AFTER:
                        # finished outcomes never wait for the next job to end
                        self._recorder.finish(chunk, pending)
                        pending = []
                    if position and now - checked > RECHECK_CLAIMED:
                        if self._draining():  # the worker is scaling in: start nothing more
                            rest = [j.jid for j in jobs[position:]]
                            return self._hand_back(chunk, rest, pending, token, ran)
                        jobs, generation = self._recheck(chunk, jobs, position, generation)
                        checked = now
                        if position >= len(jobs):
                            break
                        job = jobs[position]
                    spec = self._specs.get(chunk.tenant, job.spec_id)
                    started = time.perf_counter()
                    outcome = self._run_one(chunk, job, spec, codec, token)
                    ran += 1
                    if not pending:
                        oldest = started
                    pending.append(outcome)
                    slow = outcome.runtime > TINY_JOB
                    # A non-restartable job's outcome never waits for another job: if
                    # this process died with it unrecorded, it would fail as "worker lost".
                    restartable = spec.restartable
                    due = slow or not restartable or len(pending) >= MAX_BATCH
                    # The batch's last outcomes go with the next claim, or with the
                    # chunk's end: one round trip either way.
                    if self._damage or (due and position + 1 < len(jobs)):
                        self._recorder.finish(chunk, pending)
                        pending = []
                    position += 1
                    self._leave_if_damaged(chunk, job, jobs[position:], token)
                    batch = 1 if (slow or not restartable) else min(batch * 4, MAX_BATCH)
                    if slow and position < len(jobs):
                        # The rest of the batch would sit behind slow jobs, looking
                        # "processing": give it back and take it one job at a time.
                        rest = [j.jid for j in jobs[position:]]
                        self._recorder.unclaim(chunk, rest, token)
                        claimed -= len(rest)
                        index = rest[0] - chunk.first
                        break
            if not ended:
                self._end(chunk, pending, claimed == chunk.count, settle_later)
            return ran
        finally:
            self._state.pop()
            self._leases.release()
            self._depth -= 1
            if self._depth == 0:
                self.failed = self._failed

    def _end(
        self, chunk: ChunkRef, pending: list[Outcome], ran_all: bool, settle_later: bool
    ) -> None:
        """Record the chunk's last outcomes and end it, or leave that to `unsettled`."""
        if settle_later:
            self.unsettled = Settlement(chunk, tuple(pending), ran_all)
        else:
            self._recorder.finish(chunk, pending, end=True, ran_all=ran_all)

    def _leave_if_damaged(
        self, chunk: ChunkRef, job: ClaimedJob, rest: list[ClaimedJob], token: str
    ) -> None:
        """If `job` damaged this process, nothing more runs in it: give back the `rest`
        of the batch, end the chunk (its outcomes were recorded) and leave."""
        if not self._damage:
            return
        self._recorder.unclaim(chunk, [j.jid for j in rest], token)
        self._recorder.finish(chunk, [], end=True)
        raise ProcessDamaged(f"job {chunk.tenant}/{job.jid}: {'; '.join(self._damage)}")

    def _claim(
        self,
        chunk: ChunkRef,
        outcomes: list[Outcome],
        index: int,
        batch: int,
        token: str,
        stolen: Claim | None,
    ) -> tuple[Claim, bool]:
        """The next jobs: `stolen` (a thief's steal claimed them), else claimed now with
        `outcomes` (`Recorder.claim`); and whether that ended the chunk."""
        if stolen is not None:
            return stolen, False
        return self._recorder.claim(chunk, outcomes, index, batch, token)

    def _hand_back(
        self, chunk: ChunkRef, unstarted: list[int], pending: list[Outcome], token: str, ran: int
    ) -> int:
        """The worker is draining: give back what this runner has not started, record
        what it ran, and republish the chunk for another worker. Returns `ran`."""
        self._recorder.finish(chunk, pending)  # first: they ran, and get the longer patience
        self._recorder.unclaim(chunk, unstarted, token)
        self._recorder.finish(chunk, [], end=True)
        loss = retrying(self.store.hand_back, chunk, self.identity.worker)
        log.info("chunk %s handed back while draining (%s)", chunk.key, loss)
        return ran

    def _recheck(
        self, chunk: ChunkRef, jobs: list[ClaimedJob], position: int, generation: int
    ) -> tuple[list[ClaimedJob], int]:
        """A kill (or a recovery) may have taken claimed jobs from us: re-read them if
        the worker's kill generation moved since `generation`."""
        current = retrying(self.store.kill_generation, self.identity.worker)
        if current == generation:
            return jobs, generation
        return jobs[:position] + self._still_ours(chunk, jobs[position:]), current

    def _still_ours(self, chunk: ChunkRef, jobs: list[ClaimedJob]) -> list[ClaimedJob]:
        """Claimed jobs not started yet that are still ours to run (a kill may have
        landed on them meanwhile; they must then never start)."""
        entries = retrying(
            self.store.info, chunk.tenant, [j.jid for j in jobs], ["status", "worker"]
        )
        return [
            job
            for job, entry in zip(jobs, entries, strict=True)
            if entry
            and entry.get("status") == "processing"
            and entry.get("worker") == self.identity.worker
        ]

    def _run_one(
        self,
        chunk: ChunkRef,
        job: ClaimedJob,
        spec: JobSpec,
        codec: Codec,
        token: str,
    ) -> Outcome:
        wanted = spec.cores if self._depth == 1 else 1  # a helped job runs in its parent's
        if wanted <= 1:  # the chunk's own slot: nothing to widen (and no context manager)
            return self._run_held(chunk, job, spec, codec, token, False)
        with holding(self._cores, wanted) as enough:  # before _max_runtime's clock starts
            return self._run_held(chunk, job, spec, codec, token, not enough)

    def _run_held(
        self,
        chunk: ChunkRef,
        job: ClaimedJob,
        spec: JobSpec,
        codec: Codec,
        token: str,
        short_of_cores: bool,
    ) -> Outcome:
        max_runtime = spec.max_runtime
        self._state.set_job(
            tenant=chunk.tenant,
            jid=job.jid,
            token=token,
            pid=os.getpid(),
            started=time.time(),
            max_runtime=None if max_runtime is None else max_runtime * 60.0,
        )

        sha = spec.fn
        # Fetched here, not in load(): a `_kill_process` job loads in a forked child,
        # which must not touch this process's store connection.
        blob = None
        if sha and not codec.has_function(sha):
            blob = self.store.function(chunk.tenant, sha)

        def load() -> Loaded:
            if not sha:  # reported as the job's error, like any failure to load it
                raise CloudException("the job's options are gone from the job store (expired)")
            if self._refusal:
                raise CloudException(self._refusal)
            if short_of_cores:
                raise CloudException(
                    f"the job asks for {spec.cores} cores (_cores) but this worker has "
                    f"{self._cores.count}: start workers with at least that concurrency"
                )
            func = codec.load_function(sha, blob)
            args, kwargs = codec.load_arguments(job.args)
            return func, args, kwargs

        # A nested (helped) job gets its own streams; the outermost reuses the runner's
        # (unless a job closed them) and runs in the clean room.
        nested = self._streamer.current() is not None
        if not nested and (self._output.stdout.closed or self._output.stderr.closed):
            self._output = JobOutput(self.settings.output_limit)
        output = JobOutput(self.settings.output_limit) if nested else self._output
        room = None if nested else self._clean_room()
        context = JobContext(chunk.tenant, job.jid)
        streamer = self._streamer
        previous = streamer.current()  # a nested (helped) job resumes its parent's streaming
        streamer.begin(chunk.tenant, job.jid, output)
        if room is not None:
            room.enter()
        try:
            if spec.kill_process:
                result = run_in_fresh_process(
                    lambda: run_job(context, load, spec, codec, output),
                    self._state,
                    dict(tenant=chunk.tenant, jid=job.jid, token=token),
                    max_runtime,
                )
            else:
                result = run_job(context, load, spec, codec, output)
        finally:
            try:
                leftovers = room.leave() if room is not None else Leftovers()
            finally:
                streamer.end()
                if previous is not None:
                    streamer.begin(*previous[:3])
        self._state.clear_job()
        self._damage = leftovers.damage
        if result.status == "error" and self._depth == 1:
            self._failed.append((job.jid, last_line(result.exception)))
        return Outcome(
            jid=job.jid,
            token=token,
            status=result.status,
            result=result.result,
            exception=result.exception,
            stdout=joined(result.stdout, leftovers.stdout, self.settings.output_limit),
            stderr=joined(result.stderr, leftovers.stderr, self.settings.output_limit),
            profile=result.profile,
            runtime=result.runtime,
            cpu_user=result.cpu_user,
            cpu_system=result.cpu_system,
        )

    def _clean_room(self) -> CleanRoom:
        if self._room is None:
            self._room = CleanRoom(self.settings.output_limit)
        return self._room
