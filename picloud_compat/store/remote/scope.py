"""`TenantScope`: the store as one tenant may use it from outside the trusted side.

The gateway (for isolated clients) and a worker's pool process (for the executor
running a tenant's jobs) hold the real store. What they accept from the other side is
a method name and arguments; this class decides what that may do. The tenant is the
one the scope was made for, whatever the caller names; runner calls only exist on the
executor's channel and always claim in the pool process's name; key administration,
supervision and other tenants' records are not reachable at all.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Protocol, cast, get_args

from picloud_compat.config.compute_types import COMPUTE_TYPES
from picloud_compat.errors import CloudException, UnknownJobError
from picloud_compat.jobspec import JobSpec
from picloud_compat.store.contract import JobProcessStore
from picloud_compat.store.records import MAX_CHUNK, ChunkRef, Outcome, RecordKind, Submission
from picloud_compat.store.remote import wire

MAX_LIST = 100_000
"""Jids (or other items) one call may name; clients split longer lists."""
MAX_POP = 10.0
"""Longest blocking pop a remote caller may ask for (it holds a server thread)."""
MAX_WANTED = 1 << 30
"""Largest notice count a remote caller's pop may wait for (a hold; see `pop_notices`)."""
MAX_RECORDS = 1000
"""Records of one kind (crons, REST endpoints, environments) one tenant may keep: they
live in Redis, which tenants share (and every cron record may fire)."""
MAX_RECORD_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024
"""A record's fields are a few short texts (a schedule, a spec, requirements)."""

TENANT_METHODS = frozenset(
    {
        "allocate",
        "submit",
        "statuses",
        "info",
        "results",
        "spec",
        "function",
        "kill",
        "delete",
        "watch",
        "pop_notices",
        "unfinished",
        "jobs",
        "save_record",
        "record",
        "record_function",
        "update_record",
        "delete_record",
        "record_labels",
        "claim_once",
    }
)
"""Store methods whose first argument is the tenant: it is replaced by the scope's."""
RUNNER_METHODS = frozenset(
    {"claim", "finish", "advance", "unclaim", "append_output", "kill_generation", "hand_back"}
)
"""What an executor may also do: run its own tenant's chunks."""


class Services(Protocol):
    """Tenant-scoped services besides the store that a remote client may call
    (``files_*``, ``cron_*``), served by whoever holds the S3 and beat credentials."""

    def call(self, method: str, args: list[Any]) -> Any:
        """Run `method`; CloudException for one it does not know."""
        ...


class TenantScope:
    """Dispatches remote calls for one tenant onto the real store."""

    def __init__(
        self,
        store: JobProcessStore,
        tenant: str,
        *,
        runner: tuple[str, str] | None = None,
        services: Services | None = None,
        allow_chunk: Callable[[ChunkRef], bool] | None = None,
    ) -> None:
        """`runner` is (worker, warden) for an executor's channel, with `allow_chunk`
        saying which chunks it may work on; None for clients."""
        self.store = store
        self.tenant = tenant
        self._runner = runner
        self._services = services
        self._allow_chunk = allow_chunk or (lambda chunk: True)

    def call(self, method: str, args: list[Any]) -> Any:
        """The answer to one remote call; CloudException for anything not allowed."""
        if not isinstance(args, list):
            raise CloudException(f"arguments of {method!r} must be a list")
        if method in TENANT_METHODS:
            if not args:
                raise CloudException(f"{method!r} needs arguments")
            return self._tenant_call(method, args)
        if method == "concurrency":
            return self.store.concurrency(str(args[0]) if args else "")
        if method == "service":  # with this key's prebuilt environments only
            service = self.store.service(str(args[0]) if args else "")
            mine = tuple(e for e in service.environments if e.startswith(f"{self.tenant}:"))
            return dataclasses.replace(service, environments=mine)
        if method in RUNNER_METHODS and self._runner is not None:
            return self._runner_call(method, args)
        if method == "cron_save" and self._services is not None:
            # a beat entry fires a cron record: none without one (so they are bounded too)
            label = str(args[0]) if args else ""
            if self.store.record(self.tenant, "cron", label) is None:
                raise CloudException(f"cron_save: no cron named {label!r} is registered")
        if method.startswith(("files_", "cron_")) and self._services is not None:
            return self._services.call(method, args)
        raise CloudException(f"unknown or forbidden store call {method!r}")

    def _tenant_call(self, method: str, args: list[Any]) -> Any:
        rest = args[1:]
        for value in rest:  # jid lists: one call may not make the store loop for minutes
            if isinstance(value, list) and len(value) > MAX_LIST:
                raise CloudException(f"{method}: at most {MAX_LIST} items per call")
        if method == "submit":
            (sub,) = rest
            rest = [_checked_submission(sub)]
        if method == "pop_notices":
            cid, timeout, *wanted = rest  # `wanted` is optional: older clients leave it out
            rest = [cid, min(max(float(timeout), 0.0), MAX_POP)]
            if wanted:
                rest.append(_wanted_notices(wanted[0]))
        if method == "save_record" and len(rest) >= 3:
            self._check_room(str(rest[0]), str(rest[1]))
            _check_fields(rest[2], {})
        if method == "update_record" and len(rest) >= 3:
            kind = _record_kind(str(rest[0]))
            _check_fields(rest[2], self.store.record(self.tenant, kind, str(rest[1])) or {})
        operation: Callable[..., Any] = getattr(self.store, method)
        return operation(self.tenant, *rest)

    def _check_room(self, kind_name: str, label: str) -> None:
        """A new record must fit under `MAX_RECORDS` of its kind (replacing one always can)."""
        kind = _record_kind(kind_name)
        if self.store.record(self.tenant, kind, label) is not None:
            return
        if len(self.store.record_labels(self.tenant, kind)) >= MAX_RECORDS:
            raise CloudException(
                f"this API key already has {MAX_RECORDS} {kind} records, the most it may "
                "keep: delete some first"
            )

    def _runner_call(self, method: str, args: list[Any]) -> Any:
        assert self._runner is not None
        worker, warden = self._runner
        if method == "append_output":
            _, jid, stdout, stderr = args
            return self.store.append_output(self.tenant, int(jid), str(stdout), str(stderr))
        if method == "kill_generation":
            return self.store.kill_generation(worker)
        chunk = self._own_chunk(args[0])
        if method == "hand_back":
            return self.store.hand_back(chunk, worker)
        if method == "claim":
            _, start, max_jobs, max_bytes, _, _, token = args
            _check_claim(chunk, start, max_jobs)
            return self.store.claim(
                chunk, int(start), int(max_jobs), int(max_bytes), worker, warden, str(token)
            )
        if method == "finish":
            _, outcomes, _, end, ran_all = args
            _check_outcomes(outcomes)
            return self.store.finish(chunk, outcomes, worker, bool(end), bool(ran_all))
        if method == "advance":
            _, outcomes, start, max_jobs, max_bytes, _, _, token = args
            _check_outcomes(outcomes)
            _check_claim(chunk, start, max_jobs)
            return self.store.advance(
                chunk,
                outcomes,
                int(start),
                int(max_jobs),
                int(max_bytes),
                worker,
                warden,
                str(token),
            )
        _, jids, token = args  # unclaim
        return self.store.unclaim(chunk, [int(j) for j in jids], str(token))

    def _own_chunk(self, chunk: Any) -> ChunkRef:
        if not isinstance(chunk, ChunkRef) or chunk.tenant != self.tenant:
            raise UnknownJobError(getattr(chunk, "first", None))
        if not self._allow_chunk(chunk):
            raise CloudException(f"chunk {chunk.key} is not one this executor runs")
        return chunk


_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as `environments.spec`


def _check_claim(chunk: ChunkRef, start: Any, max_jobs: Any) -> None:
    if not (0 <= int(start) <= chunk.count and 1 <= int(max_jobs) <= MAX_CHUNK):
        raise CloudException(f"claim: bad range {start!r}, {max_jobs!r}")


def _check_outcomes(outcomes: Any) -> None:
    if not isinstance(outcomes, list) or not all(isinstance(o, Outcome) for o in outcomes):
        raise CloudException("outcomes must be a list of Outcomes")


def _record_kind(name: str) -> RecordKind:
    """A record kind named by a caller; CloudException for any other name."""
    if name not in get_args(RecordKind):
        raise CloudException(f"no record kind {name!r}")
    return cast("RecordKind", name)


def _check_fields(fields: Any, existing: dict[str, str]) -> None:
    """Fields a caller writes into a record: few and short, merged or not."""
    if not isinstance(fields, dict):
        raise CloudException("record fields must be a map of texts")
    for name, value in fields.items():
        if not isinstance(name, str) or not isinstance(value, str | bytes) or len(name) > 64:
            raise CloudException(f"record field {str(name)[:64]!r}: not a short name and a text")
        if len(value) > MAX_FIELD_BYTES:
            raise CloudException(f"record field {name!r}: over {MAX_FIELD_BYTES} bytes")
    if len(set(existing) | set(fields)) > MAX_RECORD_FIELDS:
        raise CloudException(f"a record has at most {MAX_RECORD_FIELDS} fields")


def _checked_submission(sub: Any) -> Submission:
    """A submission whose routing comes from its own spec, checked: the queue a message
    is pushed onto must be a compute type's (not any Redis key a caller names)."""
    if not isinstance(sub, Submission):
        raise CloudException("submit needs a Submission")
    try:
        spec = JobSpec.from_json(sub.spec_json)
    except Exception:
        raise CloudException("submit: the job spec does not parse") from None
    if spec.id != sub.spec_id or spec.fn != sub.fn_sha:
        raise CloudException("submit: the spec id or function does not match the spec")
    if spec.type not in COMPUTE_TYPES or not isinstance(spec.priority, int):
        raise CloudException(f"submit: unknown compute type {spec.type!r}")
    if spec.env is not None and not (isinstance(spec.env, str) and _ENV_NAME.fullmatch(spec.env)):
        raise CloudException(f"submit: environment name {str(spec.env)[:80]!r} is not valid")
    if not all(isinstance(a, bytes) for a in sub.args):
        raise CloudException("submit: arguments must be sealed blobs")
    return dataclasses.replace(
        sub,
        queue=spec.type,
        priority=spec.priority,
        depends_on=tuple(int(j) for j in spec.depends_on),
        depends_on_errors=spec.depends_on_errors,
        label=spec.label,
        display_name=spec.name,
        env=spec.env,
    )


def answer(call: Callable[[str, list[Any]], Any], body: bytes) -> bytes:
    """Decode one remote call, run it through `call`, encode its answer (errors too)."""
    try:
        request = wire.unpack(body)
        if not (isinstance(request, list) and len(request) == 2 and isinstance(request[0], str)):
            raise wire.WireError("a call is [method, args]")
        return wire.pack([True, call(request[0], request[1])])
    except Exception as exc:
        return wire.pack(wire.error_reply(exc))


def _wanted_notices(value: Any) -> int:
    """A pop's `wanted`: a positive int, at most `MAX_WANTED`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CloudException(f"pop_notices: wanted must be a positive integer, not {value!r}")
    return min(value, MAX_WANTED)
