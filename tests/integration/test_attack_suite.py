"""Hostile tests: tenant A attacks tenant B on an isolated cluster.

A holds only what it was issued: its API key, its secret and the gateway URL. B is an
ordinary tenant with a finished job (result and stdout), a file, a published REST
function and a cron. Every attempt A makes is recorded as (attempt, outcome, refused);
each test fails naming the attempts that got through, and the whole table is printed
when the module ends (past pytest's output capture).

"Refused" means: an error, a 401/404, or an answer scoped to A's own (empty) space,
with none of B's data and none of the cluster's secrets in it, and B's state unchanged
as B itself sees it afterwards.

Real parts only: the session's isolated cluster (Redis behind a password no tenant
holds, a prefork worker running jobs in per-tenant executors under their own uids, the
gateway) and moto for S3. Job functions are module level, so they ship by value; they
are given nothing of B's but B's API key and jid (which an attacker can guess).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from picloud_compat import options as opts
from picloud_compat.accounts import AccountRegistry
from picloud_compat.client.jobs import Client
from picloud_compat.cron.registry import CronRegistry
from picloud_compat.errors import AuthenticityError, CloudException, InvalidCredentials
from picloud_compat.files import api as files_api
from picloud_compat.files.remote import RemoteFileStore
from picloud_compat.jobspec import JobSpec
from picloud_compat.rest import remote as client_protocol
from picloud_compat.rest.registry import RestRegistry
from picloud_compat.settings import Settings
from picloud_compat.signing import tenant_key
from picloud_compat.store import keys
from picloud_compat.store.records import MAX_CHUNKS, ChunkRef, Outcome, Submission, WorkerInfo
from picloud_compat.store.redis import RedisStore
from picloud_compat.store.remote import wire
from picloud_compat.store.remote.http import CONTENT_TYPE
from tests.conftest import SIGNING_KEY

pytestmark = pytest.mark.timeout(300)

RUN = secrets.token_hex(6)
RESULT_MARKER = f"B-RESULT-{RUN}"
STDOUT_MARKER = f"B-STDOUT-{RUN}"
FILE_NAME = f"b-private-{RUN}.txt"
FILE_CONTENT = f"B-FILE-CONTENT-{RUN}"
ARGV_MARKER = f"B-ARGV-{RUN}"
REST_LABEL = f"b-rest-{RUN}"
CRON_LABEL = f"b-cron-{RUN}"
ONCE_NAME = f"b-once-{RUN}"
JID_HEADROOM = 100
"""B burns this many jids first, so B's jids never coincide with A's (A starts at 1)."""
UID_BASE = Settings().executor_uid_base
FAILED = "E:"
AUTH_CACHE_SECONDS = float(getattr(client_protocol, "AUTH_CACHE_SECONDS", 0.0))
"""How long the gateway may keep trusting a key it checked (a deactivation waits it out)."""
"""Prefix of an outcome string a job reports for an operation that raised."""


# =====================================================================================
# Job functions (module level: shipped by value; they run in the tenant's executor)
# =====================================================================================

CHILD = (
    "import ctypes, time\n"
    "ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # die with the job\n"
    "time.sleep(40)\n"
)


def _victim_job(stdout_marker: str, result_marker: str) -> str:
    """B's job: something printed and something returned, both B's secrets."""
    print(stdout_marker)
    return result_marker


def _victim_cron() -> None:
    """B's cron (never fired here: no beat runs; its record is what is attacked)."""


def _victim_sleeper(marker: str) -> int:
    """B's long job: a child process carrying B's data in its argv, as a job that runs
    a tool with a secret on its command line would."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", CHILD, marker])
    try:
        return child.wait(timeout=45)
    finally:
        child.kill()


def _whoami() -> tuple[int, str | None]:
    """Which uid and tenant a job really runs as."""
    import os

    from picloud_compat.runner.execution import current_job

    job = current_job()
    return os.getuid(), job.tenant if job else None


def _try(action: Callable[[], Any]) -> str:
    """'OK <value>' if `action` worked, else 'E:<errno name>' or 'E:<exception>'."""
    try:
        value = action()
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        return f"{FAILED}{name}"
    except Exception as exc:
        return f"{FAILED}{type(exc).__name__}: {str(exc)[:120]}"
    return f"OK {value!r}"[:300]


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(1 << 16).decode("utf-8", "replace")


def _write(path: str, text: str) -> int:
    with open(path, "w") as f:
        return f.write(text)


def _open_close(path: str) -> str:
    os.close(os.open(path, os.O_RDONLY))
    return "opened"


def _pids() -> list[int]:
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def _uid_of(pid: int) -> int | None:
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _pids_of(uid: int, at_least: int, seconds: float) -> list[int]:
    """Processes of `uid`, waiting up to `seconds` until there are `at_least`."""
    deadline = time.monotonic() + seconds
    while True:
        found = [p for p in _pids() if _uid_of(p) == uid]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _proc_dump(name: str) -> dict[int, tuple[int | None, str]]:
    """/proc/<pid>/<name> of every process: (its uid, the text or the error)."""
    out = {}
    for pid in _pids():
        out[pid] = (_uid_of(pid), _try(lambda p=pid: _read(f"/proc/{p}/{name}")))
    return out


def _ptrace_attach(pid: int) -> str:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(ctypes.c_long(16), ctypes.c_int(pid), None, None) == 0:  # ATTACH
        libc.ptrace(ctypes.c_long(17), ctypes.c_int(pid), None, None)  # DETACH
        return "attached"
    raise OSError(ctypes.get_errno(), "ptrace")


def _process_probes(targets: dict[str, int]) -> dict[str, str]:
    """Signals (0 and SIGCONT only: they test the same permission as SIGKILL without
    harming anyone if allowed), ptrace and /proc reads against other processes."""
    out = {}
    for name, pid in targets.items():
        for sig in (0, signal.SIGCONT):
            out[f"kill({name}, {int(sig)})"] = _try(lambda p=pid, s=sig: os.kill(p, s))
        out[f"ptrace attach {name}"] = _try(lambda p=pid: _ptrace_attach(p))
        out[f"open /proc/{name}/mem"] = _try(lambda p=pid: _open_close(f"/proc/{p}/mem"))
        out[f"read /proc/{name}/environ"] = _try(lambda p=pid: _read(f"/proc/{p}/environ"))
        out[f"list /proc/{name}/fd"] = _try(lambda p=pid: os.listdir(f"/proc/{p}/fd"))
        out[f"read /proc/{name}/maps"] = _try(lambda p=pid: _read(f"/proc/{p}/maps")[:100])
    return out


def _redis_raw(port: int, command: bytes) -> str:
    """One inline Redis command on a fresh connection, without authenticating."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(command + b"\r\n")
        return conn.recv(300).decode("utf-8", "replace")


def _redis_probes(port: int) -> dict[str, str]:
    commands = (
        b"PING",
        b"KEYS *",
        b"HGETALL pc:accounts",
        b"CONFIG GET requirepass",
        b"AUTH default guess",
        b"FLUSHALL",
    )
    return {c.decode(): _try(lambda c=c: _redis_raw(port, c)) for c in commands}


def _file_probes(b_uid: int) -> dict[str, str]:
    """B's executor home, the executors' parent, the worker's state dirs."""
    base = "/tmp/picloud-executors"
    out = {
        f"list {base}": _try(lambda: os.listdir(base)),
        f"list {base}/<B uid>": _try(lambda: os.listdir(f"{base}/{b_uid}")),
        f"create a file in {base}/<B uid>": _try(lambda: _write(f"{base}/{b_uid}/x", "x")),
        "list /tmp/pytest-of-root": _try(lambda: os.listdir("/tmp/pytest-of-root")),
    }
    for entry in os.listdir("/tmp"):
        if entry.startswith("picloud-worker-"):
            out[f"list /tmp/{entry} (a worker's state dir)"] = _try(
                lambda e=entry: os.listdir(f"/tmp/{e}")
            )
    return out


def _cgroup_probes() -> dict[str, str]:
    """Leave or widen the memory cgroup the executor was put in."""
    base = "/sys/fs/cgroup/memory"
    mine = ""
    for line in _read("/proc/self/cgroup").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            mine = parts[2]
    if not mine or mine == "/":
        return {}
    return {
        "raise own memory limit": _try(
            lambda: _write(f"{base}{mine}/memory.limit_in_bytes", str(1 << 40))
        ),
        "move self to the root memory cgroup": _try(
            lambda: _write(f"{base}/cgroup.procs", str(os.getpid()))
        ),
    }


def _hunt(b_uid: int, redis_port: int, worker_main: int, b_pids: list[int]) -> dict[str, Any]:
    """A's hunting job: everything a hostile job can look at from inside its executor.
    The pids of B's processes and of the worker come from outside: /proc may hide them
    from the job, but an attacker can still guess pids, so they are probed by number."""
    import boto3

    pool = os.getppid()
    targets = {"pool process": pool, "worker main process": worker_main}
    targets.update({f"B's process {pid}": pid for pid in b_pids})
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "pool": pool,
        "b_pids": b_pids,
        "b_pids_visible": [p for p in _pids() if _uid_of(p) == b_uid],
        "env": dict(os.environ),
        "boto3": _try(lambda: boto3.Session().get_credentials()),
        "cmdline": _proc_dump("cmdline"),
        "environ": _proc_dump("environ"),
        "process": _process_probes(targets),
        "redis": _redis_probes(redis_port),
        "files": _file_probes(b_uid),
        "cgroup": _cgroup_probes(),
    }


def _call_outcome(action: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, value) if the call was answered, (False, the error) if it was refused."""
    try:
        return True, action()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:150]}"


def _foreign_calls(b_tenant: str, b_jid: int, b_file: str) -> dict[str, tuple[bool, Any]]:
    """From inside A's executor, over its channel to the pool process: act on B."""
    from picloud_compat.client.session import get_client
    from picloud_compat.runner import execution
    from picloud_compat.store.records import ChunkRef, Outcome

    client = get_client()
    store = client.store
    chunk = ChunkRef(b_tenant, b_jid, 1)
    forged = Outcome(b_jid, "token", "done", result=client.codec.result("FORGED BY A"))

    def as_b() -> Any:
        token = execution._current.set(execution.JobContext(b_tenant, b_jid))
        try:
            return get_client().tenant
        finally:
            execution._current.reset(token)

    calls: dict[str, Callable[[], Any]] = {
        "claim B's chunk": lambda: store.call("claim", chunk, 0, 10, 1 << 20, "w", "w", "t"),
        "finish B's job with a result A sealed": lambda: store.call(
            "finish", chunk, [forged], "w", True, True
        ),
        "unclaim B's job": lambda: store.call("unclaim", chunk, [b_jid], "token"),
        "append_output naming B": lambda: store.call("append_output", b_tenant, b_jid, "PW", ""),
        "statuses naming B": lambda: store.call("statuses", b_tenant, [b_jid]),
        "results naming B": lambda: store.call("results", b_tenant, [b_jid]),
        "kill naming B": lambda: store.call("kill", b_tenant, [b_jid], "pwned"),
        "files_get_url ../B/file": lambda: store.call("files_get_url", f"../{b_tenant}/{b_file}"),
        "a cloud client for B inside the job": as_b,
    }
    return {name: _call_outcome(call) for name, call in calls.items()}


def _forge_report(kind: str, b_chunk: str, nonce: str) -> dict[str, Any]:
    """Send the pool process a state report it must not trust, then see whether it
    closed the executor. The job is re-run after that (a lost executor's jobs are
    requeued): the re-run reports what the first run saw, from a file in A's home."""
    from picloud_compat.client.session import get_client
    from picloud_compat.runner.execution import current_job
    from picloud_compat.store.remote import wire

    note = Path(os.environ["HOME"]) / f"forge-{nonce}"
    if note.exists():
        return {"rerun": True, "first": note.read_text()}
    channel = get_client().store.transport
    job = current_job()
    assert job is not None
    token = "0123456789abcdef"
    if kind == "state_push":
        channel.notify("state_push", wire.pack([b_chunk]))
    elif kind == "state_job":  # a job "running" as the pool process: a kill would hit it
        args = [job.tenant, job.jid, token, os.getppid(), time.time(), None]
        channel.notify("state_job", wire.pack(args))
    elif kind == "bad max_runtime":  # once parsed by the warden, it would stop every pass
        args = [job.tenant, job.jid, token, os.getpid(), time.time(), "x"]
        channel.notify("state_job", wire.pack(args))
    elif kind == "long token":  # would spill over the state file's fixed regions
        args = [job.tenant, job.jid, "a" * 3000, os.getpid(), time.time(), None]
        channel.notify("state_job", wire.pack(args))
    elif kind == "huge chunk":  # a claim the store would loop over for hours
        try:
            get_client().store.call("claim", ChunkRef(job.tenant, 1, 4096), 0, 1, 1, "", "", token)
            seen = "accepted"
        except Exception as exc:
            seen = f"refused: {type(exc).__name__}"
        note.write_text(seen)
        return {"rerun": False, "first": seen}
    deadline = time.monotonic() + 5
    while not channel.closed.is_set() and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = "closed" if channel.closed.is_set() else "accepted"
    note.write_text(seen)
    return {"rerun": False, "first": seen}


# =====================================================================================
# The attempt log
# =====================================================================================


@dataclass
class Attempt:
    """One thing A tried, what came of it, and whether it was refused."""

    test: str
    name: str
    outcome: str
    refused: bool


TABLE: list[Attempt] = []
NOTES: list[str] = []
"""Observations that are not attempts (limits of the test environment)."""


class Attempts:
    """The attempts of one test; `check` fails it naming every one that got through."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.items: list[Attempt] = []

    def record(self, name: str, refused: bool, outcome: Any) -> bool:
        text = " ".join(str(outcome).split())
        attempt = Attempt(self.test, name, text[:400], bool(refused))
        self.items.append(attempt)
        TABLE.append(attempt)
        return bool(refused)

    def check(self) -> None:
        bad = [a for a in self.items if not a.refused]
        assert not bad, "attempts that were NOT refused:\n" + "\n".join(
            f"- {a.name}: {a.outcome}" for a in bad
        )


@pytest.fixture
def attempts(request: pytest.FixtureRequest) -> Iterator[Attempts]:
    log = Attempts(request.node.name)
    yield log


def render_table(rows: list[Attempt]) -> str:
    """The attempts as a plain-text table, failures marked."""
    lines = ["", "=" * 110, "ATTACK SUITE: tenant A against tenant B", "=" * 110]
    for i, a in enumerate(rows, 1):
        verdict = "refused" if a.refused else "**NOT REFUSED**"
        lines.append(f"{i:3} [{verdict}] {a.name}")
        lines.append(f"      -> {a.outcome[:200]}")
    passed = sum(a.refused for a in rows)
    lines.append("-" * 110)
    lines.append(f"{passed}/{len(rows)} attempts refused; {len(rows) - passed} got through")
    for note in NOTES:
        lines.append(f"note: {note}")
    lines.append("=" * 110)
    return "\n".join(lines)


@pytest.fixture(scope="module", autouse=True)
def print_table_at_the_end(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print every attempt when the module ends, whatever pytest captures."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with quiet:
        print(render_table(TABLE), file=sys.__stdout__, flush=True)


# =====================================================================================
# The scene: B with data, A with nothing but its key
# =====================================================================================


@dataclass
class Scene:
    """The two tenants and what the test (not A) knows about B."""

    cluster: Any
    a: Client
    a_key: str
    a_secret: str
    b: Client
    b_key: str
    b_secret: str
    b_jid: int
    b_spec: str
    b_fn: str
    b_counter: int
    secrets: dict[str, str]
    before: dict[str, Any] = field(default_factory=dict)
    b_extra_jids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return str(self.cluster.gateway.url)

    @property
    def a_auth(self) -> tuple[str, str]:
        return (self.a_key, self.a_secret)

    @property
    def a_uid(self) -> int:
        return UID_BASE + int(self.a_key)

    @property
    def b_uid(self) -> int:
        return UID_BASE + int(self.b_key)


def b_state(s: Scene) -> dict[str, Any]:
    """Everything of B's that A might try to read, change or delete, read as B."""
    b, t = s.b, s.b_key
    files = b.mode.files(t)
    return {
        "jobs": sorted(j for j in b.store.jobs(t) if j[0] not in s.b_extra_jids),
        "info": b.store.info(t, [s.b_jid], ["status", "stdout", "stderr", "exception"]),
        "result": b.store.results(t, [s.b_jid]),
        "spec": b.store.spec(t, s.b_spec),
        "function": b.store.function(t, s.b_fn),
        "files": files.list(""),
        "file md5": files.md5(FILE_NAME),
        "rest record": b.store.record(t, "rest", REST_LABEL),
        "rest function": b.store.record_function(t, "rest", REST_LABEL),
        "cron record": b.store.record(t, "cron", CRON_LABEL),
        "labels": (b.store.record_labels(t, "rest"), b.store.record_labels(t, "cron")),
    }


def check_b_unchanged(s: Scene, log: Attempts, after: str) -> None:
    """Record whether B, looking through its own client, sees exactly what it had."""
    now = b_state(s)
    changed = sorted(k for k in now if now[k] != s.before[k])
    outcome = f"changed: {changed}" if changed else "identical, read through B's own client"
    log.record(f"B's state intact after {after}", not changed, outcome)


@pytest.fixture(scope="module")
def scene(isolated_cluster: Any) -> Iterator[Scene]:
    cluster = isolated_cluster
    a_key, a_secret = cluster.new_key("attacker A")
    b_key, b_secret = cluster.new_key("victim B")
    a, b = cluster.client(a_key, a_secret), cluster.client(b_key, b_secret)
    b.store.allocate(b_key, JID_HEADROOM)
    b_jid = b.call(_victim_job, STDOUT_MARKER, RESULT_MARKER)
    assert b.result(b_jid, timeout=60) == RESULT_MARKER
    spec_id = str(b.store.info(b_key, [b_jid], ["spec"])[0]["spec"])  # type: ignore[index]
    fn_sha = json.loads(b.store.spec(b_key, spec_id) or "{}")["fn"]
    files_api.putf(b.mode.files(b_key), FILE_CONTENT.encode(), FILE_NAME)
    RestRegistry(b).publish(_victim_job, REST_LABEL)
    CronRegistry(b).register(_victim_cron, CRON_LABEL, "0 0 1 1 *")
    assert b.store.claim_once(b_key, ONCE_NAME, 600)
    hidden = {
        "the cluster signing key": SIGNING_KEY,
        "the Redis password": str(cluster.redis.password),
        "B's secret": b_secret,
        "B's tenant key": tenant_key(SIGNING_KEY, b_key).hex(),
        "B's result": RESULT_MARKER,
        "B's stdout": STDOUT_MARKER,
        "B's file content": FILE_CONTENT,
        "B's process argv": ARGV_MARKER,
    }
    counter = b.store.allocate(b_key, 1)
    s = Scene(
        cluster, a, a_key, a_secret, b, b_key, b_secret, b_jid, spec_id, fn_sha, counter, hidden
    )
    s.before = b_state(s)
    assert s.before["info"][0]["stdout"].strip() == STDOUT_MARKER
    yield s
    with contextlib.suppress(Exception):
        CronRegistry(b).deregister(CRON_LABEL)
    for c in (a, b):
        c.close()


@pytest.fixture(scope="module")
def admin_redis(isolated_cluster: Any) -> Iterator[redis.Redis]:
    """The operator's Redis connection: for verifying and cleaning up, never for A."""
    client = redis.Redis.from_url(isolated_cluster.redis.url)
    yield client
    client.close()


# =====================================================================================
# Helpers: raw HTTP as A
# =====================================================================================


@dataclass
class Reply:
    """A raw answer of the gateway to one ``/v1/rpc`` call."""

    status: int
    body: bytes
    value: Any = None

    @property
    def answered(self) -> bool:
        """The call ran and returned a value (not an error)."""
        return self.status == 200 and isinstance(self.value, list) and self.value[:1] == [True]

    @property
    def result(self) -> Any:
        return self.value[1] if self.answered else None

    def describe(self) -> str:
        if self.status != 200:
            return f"HTTP {self.status} {self.body[:100]!r}"
        if self.answered:
            return f"answered {self.value[1]!r}"[:300]
        return f"refused: {self.value[1]}: {self.value[2] if len(self.value) > 2 else ''}"


def rpc(url: str, auth: tuple[str, str] | None, method: str, args: Any, path: str = "") -> Reply:
    """One call of the client protocol, built by hand (msgpack [method, args])."""
    body = msgpack.packb([method, args], default=_forged_default, use_bin_type=True)
    reply = httpx.post(
        f"{url}/v1/rpc/{path or method}",
        content=body,
        auth=auth,
        headers={"Content-Type": CONTENT_TYPE},
        timeout=30,
    )
    value = wire.unpack(reply.content) if reply.status_code == 200 else None
    return Reply(reply.status_code, reply.content, value)


def leaks(s: Scene, data: Any) -> list[str]:
    """Which of B's data or the cluster's secrets appear in `data`."""
    if isinstance(data, bytes):
        text = data.decode("latin-1")
    elif isinstance(data, str):
        text = data
    else:
        text = repr(data)
    return [name for name, value in s.secrets.items() if value and value in text]


def is_empty(value: Any) -> bool:
    """An A-scoped answer about B's names: nothing (None, False, [], [None], {})."""
    if value is None or value is False:
        return True
    if isinstance(value, list | tuple):
        return all(is_empty(v) for v in value)
    return isinstance(value, dict) and not value


def probe(
    s: Scene,
    log: Attempts,
    name: str,
    method: str,
    args: list[Any],
    judge: Callable[[Reply], bool] | None = None,
) -> Reply:
    """Make one raw call as A; refused unless it leaked or `judge` (default: an error
    or an empty answer) says it got through."""
    reply = rpc(s.url, s.a_auth, method, args)
    leaked = leaks(s, reply.body)
    ok = judge(reply) if judge else (not reply.answered or is_empty(reply.result))
    detail = reply.describe() + (f" LEAKED {leaked}" if leaked else "")
    log.record(name, ok and not leaked, detail)
    return reply


class Forged:
    """A record as an attacker puts it on the wire: the `Submission` extension type
    with whatever field values it likes, bypassing the checks our own dataclass makes
    when it is built (the server must make them again when it decodes)."""

    def __init__(self, record: Any, changes: dict[str, Any]) -> None:
        self.record, self.changes = record, changes

    def ext(self) -> msgpack.ExtType:
        values = {
            f.name: self.changes.get(f.name, getattr(self.record, f.name))
            for f in dataclasses.fields(self.record)
        }
        values["args"] = [bytes(a) for a in values["args"]]
        code = wire.RECORDS.index(type(self.record))
        return msgpack.ExtType(code, wire.pack(list(values.values())))


def _forged_default(value: Any) -> Any:
    if isinstance(value, Forged):
        return value.ext()
    return wire._default(value)


def forged_submission(client: Client, func: Callable[..., Any], **changes: Any) -> Any:
    """A Submission as `client` would send it, then changed as an attacker likes
    (a `Forged` record when the change is one our own dataclass would refuse)."""
    fn_sha, fn_blob = client.codec.function(func)
    spec = JobSpec.of(opts.parse({})[0], fn_sha, "attack")
    sub = Submission(
        cid=client.cid,
        fn_sha=fn_sha,
        fn_blob=fn_blob,
        spec_id=spec.id,
        spec_json=spec.json,
        queue=spec.type,
        priority=spec.priority,
        depends_on=(),
        depends_on_errors=spec.depends_on_errors,
        args=[bytes(client.codec.arguments(()))],
        display_name="attack",
    )
    try:
        return dataclasses.replace(sub, **changes)
    except ValueError:
        return Forged(sub, changes)


def refused_by(
    errors: tuple[type[BaseException], ...], action: Callable[[], Any]
) -> tuple[bool, str]:
    """(True, error) if `action` raised one of `errors`, (False, what it did) otherwise."""
    try:
        value = action()
    except errors as exc:
        return True, f"refused: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return False, f"unexpected {type(exc).__name__}: {exc}"
    return False, f"ANSWERED {value!r}"[:300]


# =====================================================================================
# 1-2. The gateway, with A's own credentials and with bad ones
# =====================================================================================


def test_rest_routes_with_a_credentials_never_reach_b(scene: Scene, attempts: Attempts) -> None:
    """/job and /r name objects inside the caller's key: B's jid and label are simply
    not found for A (404), and B's job is untouched."""
    s, jid = scene, scene.b_jid
    routes = [
        ("GET", f"/job/{jid}", 404),
        ("GET", f"/job/{jid}?field=stdout&field=exception", 404),
        ("GET", f"/job/{jid}/result", 404),
        ("POST", f"/job/{jid}/kill", 404),
        ("DELETE", f"/job/{jid}", 404),
        ("GET", f"/r/{REST_LABEL}", 404),
        ("POST", f"/r/{REST_LABEL}", 404),
        ("POST", f"/r/{REST_LABEL}/map", 404),
    ]
    with httpx.Client(base_url=s.url, auth=s.a_auth, timeout=30) as http:
        for verb, path, expected in routes:
            body = None
            if verb == "POST":
                value: Any = ["x"] if path.endswith("/map") else "x"
                body = {"stdout_marker": value, "result_marker": value}
            reply = http.request(verb, path, json=body)
            leaked = leaks(s, reply.content)
            attempts.record(
                f"REST {verb} {path} as A",
                reply.status_code == expected and not leaked,
                f"HTTP {reply.status_code} {reply.text[:120]}"
                + (f" LEAKED {leaked}" if leaked else ""),
            )
        listing = http.get("/r")
        attempts.record(
            "REST GET /r (A's list must not show B's label)",
            listing.status_code == 200 and REST_LABEL not in listing.text,
            f"HTTP {listing.status_code} {listing.text[:120]}",
        )
    check_b_unchanged(s, attempts, "REST calls as A")
    attempts.check()


def test_wrong_or_missing_credentials_get_401(scene: Scene, attempts: Attempts) -> None:
    """Every door asks for the key's own secret; anything else is one 401."""
    s = scene
    bad: dict[str, tuple[str, str] | None] = {
        "no credentials": None,
        "A's key, wrong secret": (s.a_key, "not-the-secret"),
        "A's key, secret + 1 char": (s.a_key, s.a_secret + "x"),
        "A's key, empty secret": (s.a_key, ""),
        "B's key, A's secret": (s.b_key, s.a_secret),
        "'admin', A's secret": ("admin", s.a_secret),
        "B's key with a leading zero, A's secret": ("0" + s.b_key, s.a_secret),
    }
    for what, auth in bad.items():
        for path in ("/v1/session", "/v1/rpc/statuses", f"/job/{s.b_jid}", "/r"):
            verb = "GET" if path.startswith(("/job", "/r")) else "POST"
            body = wire.pack(["statuses", [s.b_key, [s.b_jid]]])
            reply = httpx.request(verb, s.url + path, auth=auth, content=body, timeout=30)
            attempts.record(
                f"{verb} {path} with {what}",
                reply.status_code == 401 and not leaks(s, reply.content),
                f"HTTP {reply.status_code} {reply.text[:80]}",
            )
    garbage = httpx.post(
        s.url + "/v1/session", headers={"Authorization": "Basic %%%not-base64"}, timeout=30
    )
    attempts.record(
        "POST /v1/session with a malformed Authorization header",
        garbage.status_code == 401,
        f"HTTP {garbage.status_code} {garbage.text[:80]}",
    )
    session = httpx.post(s.url + "/v1/session", auth=s.a_auth, timeout=30)
    issued = wire.unpack(session.content)
    attempts.record(
        "A's /v1/session hands out only A's own tenant key",
        issued
        == {
            "api_key": s.a_key,
            "tenant_key": tenant_key(SIGNING_KEY, s.a_key).hex(),
            "features": ["notice_holds"],
        }
        and not leaks(s, session.content),
        f"HTTP {session.status_code}: a session for {issued.get('api_key')}",
    )
    attempts.check()


# =====================================================================================
# 1. The client protocol (/v1/rpc) naming B
# =====================================================================================


def tenant_calls(s: Scene) -> list[tuple[str, list[Any]]]:
    """Tenant-scoped store calls, each naming B as the tenant and B's objects."""
    b, j = s.b_key, s.b_jid
    fields = ["status", "stdout", "stderr", "exception", "spec", "worker", "parent"]
    return [
        ("statuses", [b, [j]]),
        ("info", [b, [j], fields]),
        ("results", [b, [j]]),
        ("spec", [b, s.b_spec]),
        ("function", [b, s.b_fn]),
        ("watch", [b, s.b.cid, [j]]),
        ("pop_notices", [b, s.b.cid, 0.0]),
        ("jobs", [b]),
        ("unfinished", [b]),
        ("record", [b, "rest", REST_LABEL]),
        ("record_function", [b, "rest", REST_LABEL]),
        ("record_labels", [b, "rest"]),
        ("record", [b, "cron", CRON_LABEL]),
        ("record_function", [b, "cron", CRON_LABEL]),
        ("record_labels", [b, "cron"]),
        ("kill", [b, [j], "pwned"]),
        ("kill", [b, None, "pwned"]),
        ("delete", [b, [j]]),
        ("update_record", [b, "rest", REST_LABEL, {"out_encoding": "raw"}]),
        ("update_record", [b, "cron", CRON_LABEL, {"schedule": "* * * * *"}]),
        ("delete_record", [b, "rest", REST_LABEL]),
        ("delete_record", [b, "cron", CRON_LABEL]),
    ]


def test_rpc_calls_naming_b_are_scoped_to_a(scene: Scene, attempts: Attempts) -> None:
    """Whatever tenant a call names, the gateway's TenantScope answers for A: B's jids
    and labels do not exist there, and B sees nothing change."""
    s = scene
    for method, args in tenant_calls(s):
        probe(s, attempts, f"rpc {method}{tuple(args)!r}"[:120], method, args)
    a_blob = s.a.codec.function(_victim_cron)[1]
    fields = {"fn": "x", "spec": "{}", "out_encoding": "json"}
    probe(
        s,
        attempts,
        "rpc save_record over B's REST label (lands in A's space)",
        "save_record",
        [s.b_key, "rest", REST_LABEL, fields, a_blob, True],
        judge=lambda r: b_state(s)["rest record"] == s.before["rest record"],
    )
    probe(
        s,
        attempts,
        "rpc claim_once of a marker B already claimed (True = not B's space)",
        "claim_once",
        [s.b_key, ONCE_NAME, 600.0],
        judge=lambda r: r.result is True,
    )
    probe(
        s,
        attempts,
        "rpc allocate naming B (B's jid counter must not move)",
        "allocate",
        [s.b_key, 5],
        judge=lambda r: s.b.store.allocate(s.b_key, 1) == s.b_counter + 1,
    )
    s.b_counter += 1
    check_b_unchanged(s, attempts, "rpc calls naming B")
    attempts.check()


def test_runner_admin_and_private_methods_are_not_served(scene: Scene, attempts: Attempts) -> None:
    """Runner calls exist only on an executor's channel, key administration and
    supervision nowhere, and no attribute of the scope is reachable by name."""
    s, b, j = scene, scene.b_key, scene.b_jid
    chunk_b, chunk_a = ChunkRef(b, j, 1), ChunkRef(s.a_key, 1, 1)
    outcome = Outcome(j, "token", "done", result=s.a.codec.result("FORGED"))
    calls: list[tuple[str, list[Any]]] = [
        ("claim", [chunk_b, 0, 10, 1 << 20, "w", "w", "t"]),
        ("claim", [chunk_a, 0, 10, 1 << 20, "w", "w", "t"]),
        ("finish", [chunk_b, [outcome], "w", True, True]),
        ("unclaim", [chunk_b, [j], "token"]),
        ("append_output", [b, j, "PWNED", "PWNED"]),
        ("create_account", ["0" * 64, "evil", 0.0]),
        ("accounts", []),
        ("account", [b]),
        ("set_account_active", [b, False]),
        ("set_account_active", [s.a_key, True]),
        ("record_owners", ["rest"]),
        ("record_owners", ["cron"]),
        ("pop_kill_requests", ["w", 0.0]),
        ("recover", [chunk_b, "w", "evil"]),
        ("recover_worker", ["w", "evil"]),
        ("reap", [0.0]),
        ("renew_leases", [[], 10.0]),
        ("heartbeat", [WorkerInfo("evil", ("c1",), 99, time.time())]),
        ("forget_worker", ["w"]),
        ("live_workers", []),
        ("_tenant_call", ["statuses", [b, [j]]]),
        ("_runner_call", ["claim", [chunk_b, 0, 10, 1, "w", "w", "t"]]),
        ("_own_chunk", [chunk_b]),
        ("call", ["statuses", [b, [j]]]),
        ("store", []),
        ("__init__", []),
        ("__class__", []),
        ("files", []),
        ("files_", []),
        ("cron_", []),
        ("files__files", []),
    ]
    for method, args in calls:
        probe(
            s,
            attempts,
            f"rpc {method} (not a tenant's call)",
            method,
            args,
            judge=lambda r: not r.answered,
        )
    sneaky = rpc(s.url, s.a_auth, "accounts", [], path="statuses")
    attempts.record(
        "POST /v1/rpc/statuses whose body asks for 'accounts'",
        not sneaky.answered,
        sneaky.describe(),
    )
    registry = AccountRegistry(
        RedisStore.from_url(s.cluster.redis.url, s.cluster.settings), s.cluster.settings
    )
    try:
        attempts.record(
            "B's key still active after A asked to deactivate it",
            registry.get_key(b).active,
            f"active={registry.get_key(b).active}",
        )
        attempts.record(
            "no account was created by A",
            all(k.note != "evil" for k in registry.list_keys()),
            f"{len(registry.list_keys())} keys, none noted 'evil'",
        )
    finally:
        registry.store.close()  # type: ignore[attr-defined]
    check_b_unchanged(s, attempts, "runner and admin calls")
    attempts.check()


def file_calls(s: Scene) -> list[tuple[str, list[Any]]]:
    """files_* and cron_* calls that try to step into B's space or past validation."""
    b, f, md5 = s.b_key, FILE_NAME, "0" * 32
    return [
        ("files_list", ["../"]),
        ("files_list", [f"../{b}/"]),
        ("files_list", [f"/files/{b}/"]),
        ("files_list", [".."]),
        ("files_list", [f"x/../../{b}/"]),
        ("files_md5", [f"../{b}/{f}"]),
        ("files_md5", [f"/files/{b}/{f}"]),
        ("files_md5", [".."]),
        ("files_get_url", [f"../{b}/{f}"]),
        ("files_get_url", [f"/files/{b}/{f}"]),
        ("files_get_url", [f"x/../../{b}/{f}"]),
        ("files_get_url", [f"..\\{b}\\{f}"]),
        ("files_get_url", [f"./../{b}/{f}"]),
        ("files_get_url", [f"a//../{b}/{f}"]),
        ("files_get_url", [f"x/\x00/../{b}/{f}"]),
        ("files_put_url", [f"../{b}/{f}", md5, 4]),
        ("files_put_url", [f"/files/{b}/{f}", md5, 4]),
        ("files_delete", [f"../{b}/{f}"]),
        ("files_delete", [f"/files/{b}/{f}"]),
        ("files_delete", [".."]),
        ("cron_save", ["evil", "* * * * *", "pc:accounts"]),
        ("cron_save", ["evil", "* * * * *", "celery"]),
        ("cron_save", ["evil", "* * * * *", f"pc:{b}:crons"]),
        ("cron_save", ["../evil", "* * * * *", "c1"]),
        ("cron_save", [f"{b}:{CRON_LABEL}", "* * * * *", "c1"]),
    ]


def test_files_and_crons_stay_inside_a(
    scene: Scene, attempts: Attempts, admin_redis: redis.Redis
) -> None:
    """File names are validated before anything is signed; crons need a known queue;
    names that pass validation still land under A's own prefix."""
    s = scene
    for method, args in file_calls(s):
        probe(
            s,
            attempts,
            f"rpc {method}{tuple(args)!r}"[:120],
            method,
            args,
            judge=lambda r: not r.answered,
        )
    probe(
        s,
        attempts,
        "rpc files_list('') (A's list: must not name B's file)",
        "files_list",
        [""],
        judge=lambda r: r.answered and FILE_NAME not in repr(r.result),
    )
    probe(s, attempts, "rpc files_md5 of B's file name (A's space: None)", "files_md5", [FILE_NAME])
    probe(s, attempts, "rpc files_delete of B's file name (A's space)", "files_delete", [FILE_NAME])
    probe(s, attempts, "rpc cron_delete of B's cron label (A's space)", "cron_delete", [CRON_LABEL])
    beat_key = keys.BEAT_PREFIX + f"{s.b_key}:{CRON_LABEL}"
    attempts.record(
        "B's beat entry survives A's cron_delete",
        bool(admin_redis.exists(beat_key)),
        f"{beat_key} exists={bool(admin_redis.exists(beat_key))}",
    )
    encoded = rpc(s.url, s.a_auth, "files_get_url", [f"..%2f{s.b_key}%2f{FILE_NAME}"])
    if encoded.answered:
        fetched = httpx.get(encoded.result, timeout=30)
        outcome = f"URL issued, S3 answered {fetched.status_code}"
        attempts.record(
            "percent-encoded '../B/file' through a presigned GET",
            FILE_CONTENT not in fetched.text,
            outcome,
        )
    else:
        attempts.record(
            "percent-encoded '../B/file' through a presigned GET", True, encoded.describe()
        )
    check_b_unchanged(s, attempts, "files and cron calls")
    attempts.check()


# =====================================================================================
# 3-4. Redis and S3 directly
# =====================================================================================


def test_a_holds_no_s3_or_redis_credentials(scene: Scene, attempts: Attempts) -> None:
    """moto accepts any credentials (so a raw boto3 call proves nothing here); what
    holds in production is that A is never given any: its client has none, and the
    presigned URLs it is issued name single objects under A's own prefix."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    s = scene
    settings = dataclasses.asdict(s.a.settings)
    found = leaks(s, settings)
    attempts.record(
        "A's client settings hold no cluster secret",
        not s.a.settings.signing_key and not found and str(s.a.settings.server_url) == s.url,
        f"signing_key={s.a.settings.signing_key!r} server_url={s.a.settings.server_url} {found}",
    )
    store = s.a.mode.files(s.a_key)
    attempts.record(
        "A's file store is presigned-URL only (no boto3 client)",
        isinstance(store, RemoteFileStore) and set(vars(store)) == {"_store"},
        f"{type(store).__name__} {sorted(vars(store))}",
    )
    files_api.putf(store, b"A's own", "a-own.txt")
    url = rpc(s.url, s.a_auth, "files_get_url", ["a-own.txt"]).result
    path = urllib.parse.unquote(urllib.parse.urlsplit(str(url)).path)
    attempts.record(
        "a presigned URL issued to A names only A's prefix",
        path.endswith(f"/files/{s.a_key}/a-own.txt") and f"files/{s.b_key}" not in str(url),
        path,
    )
    probe(
        s,
        attempts,
        "presigned GET for '../<B>/<file>'",
        "files_get_url",
        [f"../{s.b_key}/{FILE_NAME}"],
        judge=lambda r: not r.answered,
    )
    anonymous = boto3.client(
        "s3",
        endpoint_url=s.cluster.gateway.env["PICLOUD_S3_ENDPOINT_URL"],
        config=Config(signature_version=UNSIGNED),
        region_name="us-east-1",
    )
    with contextlib.suppress(Exception):
        listed = anonymous.list_objects_v2(Bucket="picloud-files", Prefix=f"files/{s.b_key}/")
        if listed.get("KeyCount"):
            NOTES.append(
                "moto served an UNSIGNED list of B's objects: the test S3 checks no "
                "credentials, so S3 isolation here rests on A never holding any "
                "(asserted above); a real S3/MinIO must refuse anonymous access"
            )
    attempts.check()


def redis_attempt(
    port: int, password: str | None, action: Callable[[redis.Redis], Any]
) -> tuple[bool, str]:
    """(refused, outcome) of one redis-py call as an outsider."""
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_timeout=3,
        protocol=2,  # the command itself is refused, not just RESP3's HELLO
        retry=Retry(NoBackoff(), 0),  # a refusal is an answer: no retrying with backoff
    )
    try:
        return refused_by((redis.AuthenticationError,), lambda: action(client))
    finally:
        client.close()


def test_redis_refuses_a_without_the_password(
    scene: Scene, attempts: Attempts, admin_redis: redis.Redis
) -> None:
    """Redis is reachable on loopback, but nothing is served without its password."""
    s = scene
    port = s.cluster.redis.port
    assert port != 6379, "never the shared Redis"
    actions: dict[str, Callable[[redis.Redis], Any]] = {
        "PING": lambda r: r.ping(),
        "GET pc:accounts:seq": lambda r: r.get("pc:accounts:seq"),
        "HGETALL pc:accounts": lambda r: r.hgetall("pc:accounts"),
        "KEYS *": lambda r: r.keys("*"),
        "CONFIG GET requirepass": lambda r: r.config_get("requirepass"),
        "EVAL": lambda r: r.eval("return redis.call('KEYS', '*')", 0),
        "FLUSHALL": lambda r: r.flushall(),
    }
    guesses = {
        "no password": None,
        "A's secret": s.a_secret,
        "A's tenant key": tenant_key(SIGNING_KEY, s.a_key).hex(),
    }
    for guess, password in guesses.items():
        for name, action in actions.items():
            refused, outcome = redis_attempt(port, password, action)
            attempts.record(f"redis {name} with {guess}", refused, outcome)
    attempts.record(
        "the store survived FLUSHALL attempts",
        bool(admin_redis.exists("pc:accounts")),
        "pc:accounts still there",
    )
    check_b_unchanged(s, attempts, "raw Redis attempts")
    attempts.check()


# =====================================================================================
# 5. A job that hunts from inside its executor
# =====================================================================================


def judge_identity(s: Scene, found: dict[str, Any], log: Attempts) -> None:
    uid = found["uid"]
    log.record(
        "A's job runs as A's own uid (not root, not B's)",
        uid == s.a_uid and uid not in (0, s.b_uid) and 0 not in found["groups"],
        f"uid={uid} gid={found['gid']} groups={found['groups']} (A={s.a_uid}, B={s.b_uid})",
    )
    env = found["env"]
    suspicious = [k for k in env if k.startswith(("AWS_", "PICLOUD_", "REDIS", "CELERY"))]
    log.record(
        "A's job environment holds no credentials",
        not suspicious and not leaks(s, env),
        f"variables: {sorted(env)}",
    )
    log.record(
        "boto3 finds no S3 credentials inside A's job", found["boto3"] == "OK None", found["boto3"]
    )


def judge_proc(s: Scene, found: dict[str, Any], log: Attempts) -> None:
    cmdlines = {pid: text for pid, (_, text) in found["cmdline"].items()}
    secret = {k: v for k, v in s.secrets.items() if k != "B's process argv"}
    shown = [name for name, value in secret.items() if value in repr(cmdlines)]
    log.record(
        "read cluster secrets or B's data from /proc/*/cmdline",
        not shown,
        f"{len(cmdlines)} processes scanned; found {shown}",
    )
    b_argv = [pid for pid, text in cmdlines.items() if ARGV_MARKER in text]
    log.record(
        "read the argv of B's running job (/proc/<B's pid>/cmdline)",
        not b_argv,
        f"B's job child {b_argv} shows argv {cmdlines.get(b_argv[0]) if b_argv else ''}"
        if b_argv
        else f"not visible (B's pids seen: {found['b_pids']})",
    )
    readable = {pid: uid for pid, (uid, text) in found["environ"].items() if text.startswith("OK")}
    foreign = {pid: uid for pid, uid in readable.items() if uid != s.a_uid}
    log.record(
        "read /proc/*/environ of processes that are not A's",
        not foreign and not leaks(s, found["environ"]),
        f"readable: {readable} (A's uid {s.a_uid}); foreign: {foreign}",
    )


def judge_probes(found: dict[str, Any], log: Attempts) -> None:
    for group in ("process", "redis", "files", "cgroup"):
        for name, outcome in found[group].items():
            if group == "redis":
                refused = outcome.startswith(FAILED) or outcome[3:].startswith(
                    ("-NOAUTH", "'-NOAUTH", "'-WRONGPASS", "-WRONGPASS")
                )
            else:
                refused = outcome.startswith(FAILED)
            log.record(
                f"job: {name}" if group != "redis" else f"job: redis {name} (no password)",
                refused,
                outcome,
            )


def test_a_hunting_job_finds_nothing_of_b_or_the_cluster(scene: Scene, attempts: Attempts) -> None:
    """While B runs a job, A's job reads and pokes at everything its executor can
    reach: environment, /proc, its parent pool process, B's processes, Redis, /tmp and
    its cgroup. Nothing of B's or of the cluster's secrets may come back, and every
    signal, trace and open of a process that is not A's must be refused."""
    s = scene
    sleeper = s.b.call(_victim_sleeper, ARGV_MARKER)
    s.b_extra_jids.add(sleeper)
    try:
        b_pids = _pids_of(s.b_uid, 2, 15.0)  # seen from the test: B's executor and child
        worker_main = s.cluster.worker.pid
        hunt = s.a.call(_hunt, s.b_uid, s.cluster.redis.port, worker_main, b_pids)
        found = s.a.result(hunt, timeout=90)
    finally:
        with contextlib.suppress(CloudException):
            s.b.kill(sleeper)
    judge_identity(s, found, attempts)
    judge_proc(s, found, attempts)
    judge_probes(found, attempts)
    pool_signal = found["process"].get("kill(pool process, 0)", "")
    attempts.record(
        "signal 0 to the pool process is EPERM", pool_signal == f"{FAILED}EPERM", pool_signal
    )
    attempts.record(
        "B's job was running while A hunted (its pids probed by number)",
        bool(found["b_pids"]),
        f"B's pids: {found['b_pids']}",
    )
    attempts.record(
        "list B's processes in /proc",
        not found["b_pids_visible"],
        f"visible to A's job: {found['b_pids_visible']}",
    )
    check_b_unchanged(s, attempts, "the hunting job")
    attempts.check()


# =====================================================================================
# 6. Planted blobs and foreign chunks
# =====================================================================================


def test_planted_blobs_and_foreign_chunks_never_reach_b(scene: Scene, attempts: Attempts) -> None:
    """A blob sealed with A's key cannot be made B's: a submission naming B lands in A's
    space and runs as A; B's own client refuses to open it; and A's executor cannot
    claim, finish or unclaim B's chunk over its channel."""
    s = scene
    reply = rpc(s.url, s.a_auth, "submit", [s.b_key, forged_submission(s.a, _whoami)])
    if reply.answered:
        ran_as = s.a.result(int(reply.result), timeout=60)
        outcome = f"became A's job {reply.result}, ran as (uid, tenant) {ran_as}"
        attempts.record(
            "submit naming B with a function A sealed", tuple(ran_as) == (s.a_uid, s.a_key), outcome
        )
    else:
        attempts.record("submit naming B with a function A sealed", True, reply.describe())
    planted = s.a.codec.function(_whoami)[1]
    refused, outcome = refused_by((AuthenticityError,), lambda: s.b.codec.load(planted))
    attempts.record("B's client opening a blob sealed with A's key", refused, outcome)
    calls = s.a.result(s.a.call(_foreign_calls, s.b_key, s.b_jid, FILE_NAME), timeout=60)
    must_refuse = {
        "claim B's chunk",
        "finish B's job with a result A sealed",
        "unclaim B's job",
        "files_get_url ../B/file",
        "a cloud client for B inside the job",
    }
    for name, (answered, value) in calls.items():
        ok = not answered if name in must_refuse else (not answered or is_empty(value))
        attempts.record(
            f"executor channel: {name}",
            ok and not leaks(s, value),
            f"{'answered' if answered else 'refused'}: {value!r}",
        )
    check_b_unchanged(s, attempts, "planted blobs and foreign chunk calls")
    attempts.check()


def test_forged_state_reports_end_the_executor(scene: Scene, attempts: Attempts) -> None:
    """The pool process writes the state file its warden trusts from the executor's
    reports; a report naming B's chunk, or a pid that is not the executor's (here the
    pool process itself, which a kill of A's job would then hit), must end the
    executor instead of being written."""
    s = scene
    b_chunk = ChunkRef(s.b_key, s.b_jid, 1).key
    kinds = ("state_push", "state_job", "bad max_runtime", "long token", "huge chunk")
    for kind in kinds:
        jid = s.a.call(_forge_report, kind, b_chunk, secrets.token_hex(4))
        try:
            seen = s.a.result(jid, timeout=90)
            outcome = f"first run saw the executor {seen['first']}; re-run={seen['rerun']}"
            refused = seen["first"] == "closed" or seen["first"].startswith("refused")
        except CloudException as exc:  # not re-run: still, the executor was ended
            outcome = f"job failed: {exc}"
            refused = "executor" in str(exc) or "worker lost" in str(exc)
        what = {
            "state_push": "B's chunk",
            "state_job": "the pool process's pid as its job",
            "bad max_runtime": "a job with max_runtime 'x'",
            "long token": "a job with a 3,000-character token",
            "huge chunk": "a claim on a 4,096-job chunk it was not given",
        }[kind]
        attempts.record(f"executor reports {what} ({kind})", refused, outcome)
    check_b_unchanged(s, attempts, "forged state reports")
    attempts.check()


# =====================================================================================
# Submissions reaching outside the tenant's keys through their queue name
# =====================================================================================


def drop_injected(admin: redis.Redis, key: str, tenant: str, jid: Any) -> None:
    """Undo an injection: the list written outside A's keys and A's ledger entry."""
    admin.delete(key)
    if isinstance(jid, int):
        chunk = f"{tenant}/{jid}+1"
        admin.hdel(keys.LEDGER, chunk)
        admin.zrem(keys.LEDGER_TIMES, chunk)


def spec_routed_to(client: Client, func: Callable[..., Any], queue: str) -> JobSpec:
    """A job spec whose compute type is `queue` at priority 0 (the bare Redis key)."""
    base = JobSpec.of(opts.parse({})[0], client.codec.function(func)[0], "attack")
    return dataclasses.replace(base, type=queue, priority=0)


INJECTIONS = (
    "Submission.queue",
    "Submission.queue and its spec's type",
    "the spec of A's REST record, then POST /r/<label>",
)
"""Three ways for A to name the Redis list its job's message is pushed onto."""


def inject(s: Scene, how: str, queue: str) -> tuple[str, Any]:
    """Have one of A's jobs routed to `queue`; (what the gateway said, its jid)."""
    if how == INJECTIONS[2]:
        label = f"a-rest-{secrets.token_hex(3)}"
        RestRegistry(s.a).publish(_whoami, label)
        spec = spec_routed_to(s.a, _whoami, queue)
        s.a.store.update_record(s.a_key, "rest", label, {"spec": spec.json})
        http = httpx.post(f"{s.url}/r/{label}", auth=s.a_auth, json={}, timeout=30)
        jid = http.json().get("jid") if http.status_code == 200 else None
        return f"HTTP {http.status_code} {http.text[:100]}", jid
    changes: dict[str, Any] = {"queue": queue, "priority": 0}
    if how == INJECTIONS[1]:
        spec = spec_routed_to(s.a, _whoami, queue)
        changes.update(spec_id=spec.id, spec_json=spec.json)
    reply = rpc(s.url, s.a_auth, "submit", [s.a_key, forged_submission(s.a, _whoami, **changes)])
    return reply.describe(), reply.result if reply.answered else None


def inject_into_the_reaper_lock(s: Scene, how: str, admin: redis.Redis) -> tuple[str, Any]:
    """The lock exists about 1.5 s of every 2 (an LPUSH onto it then fails): retry
    until it was absent, i.e. until a job was created or the key became a list."""
    said, jid = "", None
    for _ in range(15):
        said, jid = inject(s, how, keys.REAPER_LOCK)
        if "WRONGTYPE" not in said or admin.type(keys.REAPER_LOCK) == b"list":
            break
        time.sleep(0.3)
    return said, jid


def test_submit_cannot_name_a_redis_key_as_its_queue(
    scene: Scene, attempts: Attempts, admin_redis: redis.Redis, isolated_cluster: Any
) -> None:
    """A job's queue is the Redis list the store LPUSHes the chunk's message onto.
    Whoever names it (a Submission, the spec inside it, a REST record's spec that the
    gateway submits from), it must be one of the compute types (cron_save checks
    this); otherwise A writes into any Redis key: another tenant's next job record
    (whose next submit then fails) or the cluster's reaper lock (a list there never
    expires, so the reaper's SET NX never wins and no lost chunk is recovered)."""
    s = scene
    v_key, v_secret = isolated_cluster.new_key("victim V")
    v = isolated_cluster.client(v_key, v_secret)
    try:
        next_jid = v.call(_victim_job, "v", "v") + 1
        v.join(next_jid - 1, timeout=60)
        for how in INJECTIONS:
            target = f"pc:{v_key}:j:{next_jid}"
            said, jid = inject(s, how, target)
            written = admin_redis.type(target).decode()
            victim = refused_by((Exception,), lambda: v.result(v.call(_whoami), timeout=30))
            next_jid += 1  # V's call used (or lost) that jid
            attempts.record(
                f"queue named in {how} = '{target}' (V's next job record)",
                written == "none",
                f"{said}; {target} became a {written!r}; V's next call: {victim[1][:140]}",
            )
            drop_injected(admin_redis, target, s.a_key, jid)
        for how in INJECTIONS:
            said, jid = inject_into_the_reaper_lock(s, how, admin_redis)
            lock = admin_redis.type(keys.REAPER_LOCK).decode()
            ttl = admin_redis.ttl(keys.REAPER_LOCK)
            attempts.record(
                f"queue named in {how} = '{keys.REAPER_LOCK}' (the cluster's reaper lock)",
                lock != "list",
                f"{said}; {keys.REAPER_LOCK} is a {lock!r} with TTL {ttl}"
                + (" (the reaper's SET NX can never win)" if lock == "list" else ""),
            )
            drop_injected(admin_redis, keys.REAPER_LOCK, s.a_key, jid)
    finally:
        with contextlib.suppress(Exception):
            s.a.kill()
        v.close()
    check_b_unchanged(s, attempts, "queue injections")
    attempts.check()


def unparseable_ledger_entries(admin: redis.Redis, tenant: str) -> list[str]:
    """Ledger entries of `tenant` whose chunk key `ChunkRef.parse` (the reaper) rejects."""
    bad = []
    for raw in admin.hkeys(keys.LEDGER):
        key = raw.decode()
        if key.startswith(f"{tenant}/"):
            try:
                ChunkRef.parse(key)
            except ValueError:
                bad.append(key)
    return bad


def test_submit_cannot_plant_a_chunk_key_the_reaper_cannot_parse(
    scene: Scene, attempts: Attempts, admin_redis: redis.Redis
) -> None:
    """`Submission.first` (pre-allocated jids) reaches submit.lua unchecked. Lua turns
    '1e1' or 2.5 into numbers for the job keys but names the chunk '1e1+1' / '2.5+1' in
    the cluster-wide ledger, and the worker ends a chunk it parsed to ints, so that
    entry never leaves the ledger. Once older than orphan_seconds, every other reaper
    pass reaches it, ChunkRef.parse raises ValueError ("supervision pass failed" in the
    worker log) and the rest of that pass is skipped; ORPHANS_PER_PASS such entries,
    older than any real orphan, stop orphan republishing for every tenant. A
    non-integer `first` must be refused."""
    s = scene
    for first in ("1e1", 2.5, "0x10"):
        sub = forged_submission(s.a, _whoami, first=first)
        reply = rpc(s.url, s.a_auth, "submit", [s.a_key, sub])
        planted = unparseable_ledger_entries(admin_redis, s.a_key)
        attempts.record(
            f"submit with Submission.first={first!r}",
            not planted,
            f"{reply.describe()}; ledger entries the reaper cannot parse: {planted}",
        )
        for key in planted:
            admin_redis.hdel(keys.LEDGER, key)
            admin_redis.zrem(keys.LEDGER_TIMES, key)
    with contextlib.suppress(Exception):
        s.a.kill()
    attempts.check()


def test_forged_chunk_sizes_are_refused_and_plant_nothing(
    scene: Scene, attempts: Attempts, admin_redis: redis.Redis
) -> None:
    """`Submission.chunks` (a small map's chunk sizes, sent in one request) becomes chunk
    keys, Celery messages and ledger entries in submit.lua. Sizes that are not positive
    integers adding up to the jobs, or more than MAX_CHUNKS of them, must be refused
    before anything is written; well-formed ones make one chunk each."""
    s = scene
    blob = bytes(s.a.codec.arguments(()))

    def ledger() -> set[str]:  # A's published chunks
        entries = (k.decode() for k in admin_redis.hkeys(keys.LEDGER))
        return {k for k in entries if k.startswith(f"{s.a_key}/")}

    bad: list[tuple[int, Any]] = [
        (2, ("1e1", 1)),
        (2, (2.5, -0.5)),
        (2, (0, 2)),
        (2, (-1, 3)),
        (2, (1,)),
        (2, (1, 1, 1)),
        (2, ((1, 1),)),
        (2, "11"),
        (2, {"1": 1, "2": 1}),
        (2, 2),
        (MAX_CHUNKS + 1, (1,) * (MAX_CHUNKS + 1)),
    ]
    try:
        for jobs, chunks in bad:
            before = ledger()
            sub = forged_submission(s.a, _whoami, args=[blob] * jobs, chunks=chunks)
            reply = rpc(s.url, s.a_auth, "submit", [s.a_key, sub])
            planted = ledger() - before
            attempts.record(
                f"submit {jobs} jobs with Submission.chunks={str(chunks)[:40]}",
                not reply.answered and not planted,
                f"{reply.describe()}; new ledger entries: {sorted(planted)[:4]}",
            )
        before = ledger()
        sub = forged_submission(s.a, _whoami, args=[blob] * 3, chunks=(1, 2))
        reply = rpc(s.url, s.a_auth, "submit", [s.a_key, sub])
        made = ledger() - before
        # the same channel, well-formed: answered, one chunk per size
        assert reply.answered, reply.describe()
        first = reply.result
        assert made == {f"{s.a_key}/{first}+1", f"{s.a_key}/{first + 1}+2"}
    finally:
        with contextlib.suppress(Exception):
            s.a.kill()
    attempts.check()


# =====================================================================================
# 2. A deactivated key
# =====================================================================================


def test_a_deactivated_key_is_refused_and_cannot_reactivate_itself(
    isolated_cluster: Any, scene: Scene, attempts: Attempts
) -> None:
    """Once the admin deactivates a key, every door answers 401 and nothing the key's
    holder can send turns it back on."""
    cluster = isolated_cluster
    key, secret = cluster.new_key("attacker A2")
    client = cluster.client(key, secret)
    jid = client.call(_whoami)
    client.result(jid, timeout=60)
    admin = RedisStore.from_url(cluster.redis.url, cluster.settings)
    registry = AccountRegistry(admin, cluster.settings)
    registry.set_active(key, False)
    if AUTH_CACHE_SECONDS:
        NOTES.append(
            f"by design the gateway's /v1 trusts a key it checked within the last "
            f"{AUTH_CACHE_SECONDS:g} s: a deactivated key keeps working that long"
        )
        time.sleep(AUTH_CACHE_SECONDS + 0.5)
    try:
        auth = (key, secret)
        tries = [
            ("POST", "/v1/session", b""),
            ("POST", "/v1/rpc/statuses", wire.pack(["statuses", [key, [jid]]])),
            ("POST", "/v1/rpc/set_account_active", wire.pack(["set_account_active", [key, True]])),
            (
                "POST",
                "/v1/rpc/submit",
                wire.pack(["submit", [key, forged_submission(client, _whoami)]]),
            ),
            ("GET", f"/job/{jid}", b""),
            ("GET", f"/job/{jid}/result", b""),
            ("GET", "/r", b""),
        ]
        for verb, path, body in tries:
            reply = httpx.request(
                verb, cluster.gateway.url + path, auth=auth, content=body, timeout=30
            )
            attempts.record(
                f"deactivated key: {verb} {path}",
                reply.status_code == 401,
                f"HTTP {reply.status_code} {reply.text[:80]}",
            )
        refused, outcome = refused_by((InvalidCredentials,), lambda: client.status(jid))
        attempts.record("deactivated key: its open client asks a status", refused, outcome)
        refused, outcome = refused_by((InvalidCredentials,), lambda: cluster.client(key, secret))
        attempts.record("deactivated key: a new session (setkey again)", refused, outcome)
        still = registry.get_key(key).active
        attempts.record(
            "deactivated key is still inactive after all that", not still, f"active={still}"
        )
    finally:
        client.close()
        admin.close()
    attempts.check()
