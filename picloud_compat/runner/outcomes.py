"""What is recorded of a job's run besides its result: its output, its failure's line,
and the stand-in for an outcome the store refused."""

from __future__ import annotations

from picloud_compat.store.records import Outcome


def last_line(text: str | None) -> str:
    """The exception's own line (a traceback ends with it), short enough for a list."""
    lines = (text or "").strip().splitlines()
    return (lines[-1] if lines else "")[:200]


def joined(python_level: str, fd_level: str, limit: int) -> str:
    """A job's output: what it printed, then what reached its file descriptor (C code,
    subprocesses); the tail, within the output limit."""
    if not fd_level:
        return python_level
    return (python_level + fd_level)[-limit:]


def unsaveable(outcome: Outcome) -> Outcome:
    """What is recorded for a job whose outcome the store refused: an error, without the
    result and output that could not be saved."""
    return Outcome(
        jid=outcome.jid,
        token=outcome.token,
        status="error",
        exception="the job ran, but its outcome could not be saved (result or output refused "
        "by the job store)",
        runtime=outcome.runtime,
    )
