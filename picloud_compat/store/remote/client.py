"""`RemoteStore`: the store contract spoken to a `TenantScope` on the trusted side.

Isolated clients reach it over HTTPS (the gateway), executors over a socket to their
worker's pool process. Either way the caller holds no Redis credentials and the far
side decides which tenant every call acts for; this class only marshals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from picloud_compat.errors import CloudException
from picloud_compat.store.records import (
    Account,
    ChunkRef,
    Claim,
    JobEntry,
    Notice,
    Outcome,
    QueueService,
    RecordKind,
    Submission,
    WorkerLoss,
)
from picloud_compat.store.remote import wire


class Transport(Protocol):
    """Carries one encoded call to the trusted side and brings back its encoded answer."""

    def request(self, method: str, body: bytes, timeout: float | None = None) -> bytes:
        """The answer to `body` (`wire.pack([method, args])`); ConnectionFailed if the
        other side cannot be reached."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class RemoteStore:
    """A `JobProcessStore` whose every call is answered by a `TenantScope` elsewhere."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # whether the far side takes `pop_notices`'s `wanted` (a pool process always
        # does; a gateway says so when a session opens)
        self.notice_holds = True

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """One remote call: its value, or the error the far side raised."""
        answer = wire.unpack(
            self.transport.request(method, wire.pack([method, list(args)]), timeout)
        )
        if not isinstance(answer, list) or not answer:
            raise wire.WireError("malformed answer")
        if answer[0] is True:
            return answer[1]
        wire.raise_error(str(answer[1]), answer[2] if len(answer) > 2 else None)
        raise AssertionError("unreachable")

    # -- ClientStore ------------------------------------------------------------------

    def allocate(self, t: str, count: int) -> int:
        return int(self.call("allocate", t, count))

    def submit(self, t: str, sub: Submission) -> int:
        return int(self.call("submit", t, sub))

    def statuses(self, t: str, jids: Sequence[int]) -> list[str | None]:
        return [s for part in _parts(jids) for s in self.call("statuses", t, part)]

    def info(self, t: str, jids: Sequence[int], fields: Sequence[str]) -> list[JobEntry | None]:
        wanted = list(fields)
        return [e for part in _parts(jids) for e in self.call("info", t, part, wanted)]

    def results(self, t: str, jids: Sequence[int]) -> list[bytes | None]:
        return [r for part in _parts(jids) for r in self.call("results", t, part)]

    def spec(self, t: str, spec_id: str) -> str | None:
        value = self.call("spec", t, spec_id)
        return None if value is None else str(value)

    def function(self, t: str, sha: str) -> bytes | None:
        value = self.call("function", t, sha)
        return None if value is None else bytes(value)

    def kill(self, t: str, jids: Sequence[int] | None, reason: str = "Killed") -> list[int]:
        if jids is None:
            return list(self.call("kill", t, None, reason))
        return [j for part in _parts(jids) for j in self.call("kill", t, part, reason)]

    def delete(self, t: str, jids: Sequence[int]) -> None:
        for part in _parts(jids):
            self.call("delete", t, part)

    def watch(self, t: str, cid: str, jids: Sequence[int]) -> list[str | None]:
        return [s for part in _parts(jids) for s in self.call("watch", t, cid, part)]

    def pop_notices(self, t: str, cid: str, timeout: float, wanted: int = 1) -> list[Notice]:
        held = wanted > 1 and self.notice_holds
        args = (t, cid, timeout, wanted) if held else (t, cid, timeout)
        return list(self.call("pop_notices", *args, timeout=timeout + 30.0))

    def unfinished(self, t: str) -> list[int]:
        return list(self.call("unfinished", t))

    def jobs(self, t: str) -> list[tuple[int, str, str]]:
        return [(int(j), str(s), str(o)) for j, s, o in self.call("jobs", t)]

    def concurrency(self, queue: str) -> int:
        return int(self.call("concurrency", queue))

    def service(self, queue: str) -> QueueService:
        service = self.call("service", queue)
        if not isinstance(service, QueueService):
            raise wire.WireError("service answered without a QueueService")
        return service

    def close(self) -> None:
        self.transport.close()

    # -- RunnerStore (answered only on an executor's channel) ------------------------------

    def claim(
        self,
        chunk: ChunkRef,
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        claim = self.call("claim", chunk, start, max_jobs, max_bytes, worker, warden, token)
        if not isinstance(claim, Claim):
            raise wire.WireError("claim answered without a Claim")
        return claim

    def finish(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        worker: str,
        end: bool,
        ran_all: bool = False,
    ) -> None:
        self.call("finish", chunk, list(outcomes), worker, end, ran_all)

    def advance(
        self,
        chunk: ChunkRef,
        outcomes: Sequence[Outcome],
        start: int,
        max_jobs: int,
        max_bytes: int,
        worker: str,
        warden: str,
        token: str,
    ) -> Claim:
        claim = self.call(
            "advance", chunk, list(outcomes), start, max_jobs, max_bytes, worker, warden, token
        )
        if not isinstance(claim, Claim):
            raise wire.WireError("advance answered without a Claim")
        return claim

    def unclaim(self, chunk: ChunkRef, jids: Sequence[int], token: str) -> None:
        self.call("unclaim", chunk, list(jids), token)

    def kill_generation(self, worker: str) -> int:
        return int(self.call("kill_generation", worker))

    def hand_back(self, chunk: ChunkRef, worker: str) -> WorkerLoss:
        loss = self.call("hand_back", chunk, worker)
        if not isinstance(loss, WorkerLoss):
            raise wire.WireError("hand_back answered without a WorkerLoss")
        return loss

    def append_output(self, t: str, jid: int, stdout: str, stderr: str) -> None:
        self.call("append_output", t, jid, stdout, stderr)

    # -- RecordStore (the tenant's own records; key administration is not reachable) --

    def save_record(
        self,
        t: str,
        kind: RecordKind,
        label: str,
        fields: dict[str, str],
        function: bytes,
        replace: bool,
    ) -> bool:
        return bool(self.call("save_record", t, kind, label, fields, function, replace))

    def record(self, t: str, kind: RecordKind, label: str) -> dict[str, str] | None:
        value = self.call("record", t, kind, label)
        return None if value is None else dict(value)

    def record_function(self, t: str, kind: RecordKind, label: str) -> bytes | None:
        value = self.call("record_function", t, kind, label)
        return None if value is None else bytes(value)

    def update_record(self, t: str, kind: RecordKind, label: str, fields: dict[str, str]) -> None:
        self.call("update_record", t, kind, label, fields)

    def delete_record(self, t: str, kind: RecordKind, label: str) -> bool:
        return bool(self.call("delete_record", t, kind, label))

    def record_labels(self, t: str, kind: RecordKind) -> list[str]:
        return list(self.call("record_labels", t, kind))

    def claim_once(self, t: str, name: str, ttl: float) -> bool:
        return bool(self.call("claim_once", t, name, ttl))

    # -- not a tenant's to ask: answered here, without asking -----------------------------

    def record_owners(self, kind: RecordKind) -> list[str]:
        raise CloudException("listing other tenants' records is not available to a tenant")

    def create_account(self, secret_hash: str, note: str, created: float) -> str:
        raise CloudException("managing API keys is the administrator's, not a tenant's")

    def account(self, api_key: str) -> Account | None:
        raise CloudException("managing API keys is the administrator's, not a tenant's")

    def accounts(self) -> list[Account]:
        raise CloudException("managing API keys is the administrator's, not a tenant's")

    def usage(self, t: str) -> dict[str, tuple[int, float]]:
        raise CloudException("usage is read by the administrator (picloud usage)")

    def set_account_active(self, api_key: str, active: bool) -> bool:
        raise CloudException("managing API keys is the administrator's, not a tenant's")


PART = 50_000
"""Jids per call: the far side refuses more than `scope.MAX_LIST` at once."""


def _parts(jids: Sequence[int]) -> list[list[int]]:
    listed = list(jids)
    return [listed[i : i + PART] for i in range(0, len(listed), PART)] or [[]]
