"""Every exception the platform raises, in one hierarchy.

    CloudException                    PiCloud's public error: jid, status, remote traceback
    ├── CloudTimeoutError             a join/result/iresult wait ran out of time
    ├── CloudPicklingError            a function, argument or result cannot be serialized
    ├── AuthenticityError             a stored pickle failed its HMAC check; never unpickled
    ├── ChunkJobsFailed               (workers) a chunk's task reports its failed jobs
    ├── ConnectionFailed              Redis (or the simulator) cannot be reached
    ├── ConfigurationError            settings are missing or malformed
    ├── InvalidCredentials            unknown or deactivated API key, or a wrong secret
    ├── ResultLoadError               a finished job's result cannot be loaded here
    │   └── UnauthenticResult         ... because it failed its HMAC check (also an
    │                                 AuthenticityError)
    └── UnknownJobError               a jid that does not exist, was deleted or purged

    NoWorkersWarning (a UserWarning)  submitted to a compute type no live worker serves

`CloudException` keeps the original client's constructor and attributes (`parameter`,
`jid`, `status`, `retry`, `hint`) so code written against PiCloud keeps working.
"""

from __future__ import annotations

from typing import Any

PICKLE_HINT = "Please see the picloud-compat README for more information about pickle errors"


class CloudException(Exception):
    """A job failed, or the platform refused a request."""

    def __init__(
        self,
        value: Any,
        jid: Any = None,
        status: Any = None,
        retry: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(jid, status, value, jid)
        self.parameter = value
        self.jid = jid
        self.status = status
        self.retry = retry
        self.hint = hint

    def __str__(self) -> str:
        if self.jid is not None and not isinstance(self.jid, list | tuple | range):
            text = f"Job {self.jid}: {self.parameter}"
        elif self.status is not None:
            text = f"Error {self.status}: {self.parameter}"
        else:
            text = str(self.parameter)
        if self.hint:
            text += f"\nTIP: {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses have narrower constructors, so rebuild without calling them: the
        # simulator ships these exceptions between processes.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[CloudException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class CloudTimeoutError(CloudException):
    """A wait for jobs timed out; `.jid` holds the jids still unfinished."""

    def __init__(self, value: Any = "Timed out", jid: Any = None, **_: Any) -> None:
        super().__init__(value, jid=jid, status=None)

    def __str__(self) -> str:
        return str(self.parameter)


class CloudPicklingError(CloudException):
    """Something the user passed or returned cannot be serialized."""


class AuthenticityError(CloudException):
    """A payload's signature is missing or wrong: it was not written by this platform."""


class ConnectionFailed(CloudException):
    """The job store (Redis or the simulator) is unreachable."""

    def __init__(self, value: Any, **kwargs: Any) -> None:
        kwargs.setdefault("status", 503)
        super().__init__(value, **kwargs)


class ConfigurationError(CloudException):
    """Settings are missing, contradictory or malformed."""


class UnknownJobError(CloudException):
    """The jid was never created, was deleted, or belongs to someone else."""

    def __init__(self, jid: Any) -> None:
        super().__init__("Does not exist or was purged", jid=jid)


class InvalidCredentials(CloudException):
    """Unknown key, wrong secret or deactivated key (deliberately not told apart)."""

    def __init__(self, message: str = "invalid API key or secret, or the key is deactivated"):
        super().__init__(message, status=401)


class ResultLoadError(CloudException):
    """A job finished, but its result cannot be loaded in this process (a class that
    exists only where the job ran, a tampered blob). Carries the jid."""

    def __init__(self, jid: int, cause: BaseException) -> None:
        name = getattr(cause, "name", None)
        hint = f" (module {name!r} is missing here)" if isinstance(cause, ImportError) else ""
        detail = cause.parameter if isinstance(cause, CloudException) else cause
        super().__init__(
            f"its result cannot be loaded here: {type(cause).__name__}: {detail}{hint}",
            jid=jid,
            status="done",
        )


class ChunkJobsFailed(CloudException):
    """Raised by the Celery task of a chunk whose jobs (some) ended `error`, after all of
    them were recorded: it is what makes Flower and Celery's events show the chunk as
    failed, naming the jobs. Nothing is retried or lost for it."""

    def __init__(self, tenant: str, failed: list[tuple[int, str]], ran: int) -> None:
        shown = "; ".join(f"job {jid}: {text}" for jid, text in failed[:10])
        more = f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
        super().__init__(
            f"{len(failed)} of {ran} job(s) of API key {tenant} failed: {shown}{more}",
            jid=[jid for jid, _ in failed],
            status="error",
        )


class NoWorkersWarning(UserWarning):
    """Jobs were submitted to a compute type that no live worker serves (yet)."""


class UnauthenticResult(ResultLoadError, AuthenticityError):
    """A stored result failed its HMAC check (planted or tampered with): it was never
    unpickled. Both a `ResultLoadError` (naming the jid) and an `AuthenticityError`."""
