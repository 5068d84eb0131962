"""The job functions `cloud` and `cloud.mp` both export, bound to where their client
comes from (the default client, or cloud.mp's own local one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from picloud_compat.client.handles import JobId, JobList
from picloud_compat.client.jobs import Client
from picloud_compat.client.results import ResultIterator


class JobApi:
    """PiCloud's job functions, each delegating to the client `get_client` returns."""

    def __init__(self, get_client: Callable[[], Client]) -> None:
        self._get = get_client

    def call(self, func: Any, *args: Any, **kwargs: Any) -> JobId:
        """Run ``func(*args, **kwargs)`` as a job; return its jid (see README for `_kwargs`)."""
        return self._get().call(func, *args, **kwargs)

    def map(self, func: Any, *iterables: Any, **kwargs: Any) -> JobList:
        """One job per element (shorter iterables padded with None); jids in input order."""
        return self._get().map(func, *iterables, **kwargs)

    def status(self, jids: Any) -> Any:
        """Status string of a jid, or a list of statuses for a list of jids."""
        return self._get().status(jids)

    def info(self, jids: Any, info_requested: Any = None) -> dict[int, dict[str, Any]]:
        """{jid: {field: value}}; default fields stdout, stderr, status, runtime; 'all' for all."""
        return self._get().info(jids, info_requested)

    def join(
        self,
        jids: Any,
        timeout: float | None = None,
        ignore_errors: bool = False,
        deadlock_check: bool = True,
    ) -> None:
        """Block until the jobs finish; raise CloudException for the first failed one."""
        self._get().join(jids, timeout, ignore_errors, deadlock_check)

    def result(
        self,
        jids: Any,
        timeout: float | None = None,
        ignore_errors: bool = False,
        deadlock_check: bool = True,
    ) -> Any:
        """The return value of a job, or the list of values of a list of jobs (in order)."""
        return self._get().result(jids, timeout, ignore_errors, deadlock_check)

    def iresult(
        self,
        jids: Any,
        timeout: float | None = None,
        num_in_parallel: int = 10,
        ignore_errors: bool = False,
    ) -> ResultIterator:
        """Iterate results in jid order as they arrive; a failed job raises, then goes on."""
        return self._get().iresult(jids, timeout, num_in_parallel, ignore_errors)

    def kill(self, jids: Any = None) -> None:
        """Kill jobs (all of this account's unfinished jobs if no jids are given)."""
        self._get().kill(jids)

    def delete(self, jids: Any) -> None:
        """Remove finished jobs' results and output; raises for unfinished jobs."""
        self._get().delete(jids)

    def connection_info(self) -> dict[str, Any]:
        """{opened, connection_type, and the mode's details}."""
        return self._get().connection_info()
