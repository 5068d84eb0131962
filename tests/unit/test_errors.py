from __future__ import annotations

import pickle

import pytest
import redis.exceptions as rexc

from picloud_compat.errors import (
    AuthenticityError,
    CloudException,
    CloudPicklingError,
    CloudTimeoutError,
    ConfigurationError,
    ConnectionFailed,
    UnknownJobError,
)
from picloud_compat.store.redis.connection import store_errors

SUBCLASSES = [
    CloudTimeoutError,
    CloudPicklingError,
    AuthenticityError,
    ConnectionFailed,
    ConfigurationError,
    UnknownJobError,
]


def test_str_with_jid() -> None:
    assert str(CloudException("msg", jid=5)) == "Job 5: msg"
    assert str(CloudException("msg", jid=5, status="error")) == "Job 5: msg"
    assert str(CloudException("msg", jid=0)) == "Job 0: msg"


def test_str_with_status_and_no_jid() -> None:
    assert str(CloudException("msg", status=503)) == "Error 503: msg"


def test_str_with_jid_list_uses_status_or_message() -> None:
    assert str(CloudException("msg", jid=[1, 2], status=503)) == "Error 503: msg"
    assert str(CloudException("msg", jid=range(3))) == "msg"
    assert str(CloudException("msg", jid=(1,))) == "msg"


def test_str_plain() -> None:
    assert str(CloudException("msg")) == "msg"
    assert str(CloudException(ValueError("inner"))) == "inner"


def test_hint_is_appended() -> None:
    assert str(CloudException("msg", jid=5, hint="do x")) == "Job 5: msg\nTIP: do x"
    assert str(CloudException("msg", status=1, hint="h")) == "Error 1: msg\nTIP: h"
    assert str(CloudException("msg", hint="")) == "msg"


def test_attributes_and_args() -> None:
    exc = CloudException("msg", jid=5, status="error", retry=True, hint="h")
    assert exc.args == (5, "error", "msg", 5)
    assert (exc.parameter, exc.jid, exc.status, exc.retry, exc.hint) == (
        "msg",
        5,
        "error",
        True,
        "h",
    )
    assert CloudException("m").args == (None, None, "m", None)


def test_cloud_exception_pickle_round_trip() -> None:
    exc = CloudException("msg", jid=5, status="error", retry=True, hint="h")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is CloudException
    assert back.args == exc.args
    assert (back.parameter, back.jid, back.status, back.retry, back.hint) == (
        "msg",
        5,
        "error",
        True,
        "h",
    )
    assert str(back) == str(exc)


def test_cloud_timeout_error() -> None:
    exc = CloudTimeoutError("waited too long", jid=[1, 2, 3])
    assert exc.status is None
    assert exc.jid == [1, 2, 3]
    assert str(exc) == "waited too long"
    assert str(CloudTimeoutError()) == "Timed out"
    assert CloudTimeoutError("t", jid=4, status=99).status is None


def test_cloud_timeout_error_pickle_round_trip() -> None:
    back = pickle.loads(pickle.dumps(CloudTimeoutError("timed out", jid=[1, 2])))
    assert type(back) is CloudTimeoutError
    assert back.jid == [1, 2]
    assert back.status is None
    assert back.args == ([1, 2], None, "timed out", [1, 2])
    assert str(back) == "timed out"


def test_pickling_error_pickle_round_trip() -> None:
    back = pickle.loads(pickle.dumps(CloudPicklingError("cannot pickle", jid=3)))
    assert type(back) is CloudPicklingError
    assert str(back) == "Job 3: cannot pickle"


def test_connection_failed_defaults_to_503() -> None:
    exc = ConnectionFailed("no redis")
    assert exc.status == 503
    assert str(exc) == "Error 503: no redis"
    assert ConnectionFailed("x", status=500).status == 500


def test_unknown_job_error() -> None:
    exc = UnknownJobError(7)
    assert exc.jid == 7
    assert str(exc) == "Job 7: Does not exist or was purged"


def test_unknown_job_error_pickle_round_trip() -> None:
    back = pickle.loads(pickle.dumps(UnknownJobError(7)))
    assert type(back) is UnknownJobError
    assert back.jid == 7


def test_connection_failed_pickle_round_trip() -> None:
    back = pickle.loads(pickle.dumps(ConnectionFailed("no redis")))
    assert type(back) is ConnectionFailed
    assert back.status == 503


@pytest.mark.parametrize("cls", SUBCLASSES)
def test_hierarchy(cls: type[CloudException]) -> None:
    assert issubclass(cls, CloudException)
    assert issubclass(cls, Exception)
    assert cls.__bases__ == (CloudException,)


def test_instances_are_caught_as_cloud_exception() -> None:
    with pytest.raises(CloudException):
        raise UnknownJobError(1)
    with pytest.raises(CloudException):
        raise CloudTimeoutError(jid=[1])


@pytest.mark.parametrize(
    "error",
    [rexc.ConnectionError("refused"), rexc.TimeoutError("slow"), rexc.BusyLoadingError("load")],
)
def test_store_errors_translates_connection_problems(error: Exception) -> None:
    with (
        pytest.raises(ConnectionFailed, match="submit failed: cannot reach") as info,
        store_errors("submit"),
    ):
        raise error
    assert info.value.__cause__ is error
    assert info.value.status == 503


@pytest.mark.parametrize(
    "error",
    [
        rexc.OutOfMemoryError("command not allowed"),
        rexc.ReadOnlyError("You can't write against a read only replica."),
        rexc.MasterDownError("Link with MASTER is down"),
    ],
)
def test_store_errors_translates_refused_writes_by_type(error: Exception) -> None:
    with pytest.raises(ConnectionFailed, match="refused the write"), store_errors("finish"):
        raise error


def test_store_errors_passes_other_errors_through() -> None:
    with pytest.raises(rexc.ResponseError, match="WRONGTYPE"), store_errors("x"):
        raise rexc.ResponseError("WRONGTYPE Operation against a key")
    with pytest.raises(KeyError), store_errors("x"):
        raise KeyError("k")
    with store_errors("x"):
        pass


def test_picloud_module_path_for_exceptions() -> None:
    """User code catches `cloud.cloud.CloudException`, as PiCloud's client defined it."""
    import cloud
    from cloud.cloud import CloudException as FromModule
    from cloud.cloud import CloudTimeoutError as TimeoutFromModule

    assert cloud.cloud.CloudException is CloudException is FromModule
    assert TimeoutFromModule is CloudTimeoutError
