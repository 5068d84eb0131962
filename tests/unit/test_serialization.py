from __future__ import annotations

import pickle
import threading

import cloudpickle
import pytest

from picloud_compat.errors import (
    PICKLE_HINT,
    AuthenticityError,
    CloudException,
    CloudPicklingError,
)
from picloud_compat.serialization import Codec
from picloud_compat.settings import STORE_BLOB_CEILING
from picloud_compat.signing import Signer

SECRET = "unit-test-secret-" + "x" * 16
LIMIT = 1024 * 1024


def triple(x: int) -> int:
    return 3 * x


def quadruple(x: int) -> int:
    return 4 * x


@pytest.fixture
def codec() -> Codec:
    return Codec(Signer(SECRET, "tenant"), LIMIT)


def fresh(limit: int = LIMIT, tenant: str = "tenant") -> Codec:
    """Another process's codec: same key, empty function cache."""
    return Codec(Signer(SECRET, tenant), limit)


# -- functions -----------------------------------------------------------------------


def test_function_round_trip(codec: Codec) -> None:
    sha, blob = codec.function(triple)
    assert len(sha) == 64
    func = fresh().load_function(sha, blob)
    assert func(5) == 15


def test_closure_round_trip(codec: Codec) -> None:
    offset = 7
    sha, blob = codec.function(lambda x: x + offset)
    assert fresh().load_function(sha, blob)(1) == 8


def test_function_sha_is_stable(codec: Codec) -> None:
    assert codec.function(triple)[0] == codec.function(triple)[0]
    assert codec.function(triple)[0] == fresh().function(triple)[0]
    assert codec.function(triple)[0] != codec.function(quadruple)[0]


def test_load_function_caches_by_sha(codec: Codec) -> None:
    sha, blob = codec.function(triple)
    worker = fresh()
    assert not worker.has_function(sha)
    first = worker.load_function(sha, blob)
    assert worker.has_function(sha)
    assert worker.load_function(sha, None) is first


def test_missing_function_blob(codec: Codec) -> None:
    with pytest.raises(CloudException, match="missing") as info:
        codec.load_function("ab" * 32, None)
    assert "abababababab" in str(info.value)


def test_function_from_other_tenant_is_refused(codec: Codec) -> None:
    sha, blob = codec.function(triple)
    with pytest.raises(AuthenticityError):
        fresh(tenant="other").load_function(sha, blob)


def test_oversized_function(codec: Codec) -> None:
    big = b"z" * 4096

    def uses_big() -> int:
        return len(big)

    with pytest.raises(CloudException, match="Excessive data") as info:
        fresh(limit=1024).function(uses_big)
    assert "uses_big" in str(info.value)


def test_unpicklable_function_closure() -> None:
    lock = threading.Lock()

    def holds_lock() -> bool:
        return lock.locked()

    with pytest.raises(CloudPicklingError) as info:
        fresh().function(holds_lock)
    assert "holds_lock" in str(info.value)


# -- arguments -----------------------------------------------------------------------


def test_arguments_round_trip(codec: Codec) -> None:
    blob = codec.arguments((1, "two"), {"a": [3]})
    assert fresh().load_arguments(blob) == ((1, "two"), {"a": [3]})


def test_arguments_without_kwargs(codec: Codec) -> None:
    assert codec.load_arguments(codec.arguments([1, 2])) == ((1, 2), {})
    assert codec.load_arguments(codec.arguments((1, 2), {})) == ((1, 2), {})
    assert codec.load_arguments(codec.arguments(())) == ((), {})


def test_positional_tuple_and_dict_are_not_taken_for_kwargs(codec: Codec) -> None:
    """f((1, 2), {'a': 1}) has two positional arguments and no keyword arguments."""
    args, kwargs = codec.load_arguments(codec.arguments(((1, 2), {"a": 1})))
    assert args == ((1, 2), {"a": 1})
    assert kwargs == {}


def test_single_tuple_argument(codec: Codec) -> None:
    args, kwargs = codec.load_arguments(codec.arguments(((1, 2),)))
    assert args == ((1, 2),)
    assert kwargs == {}


def test_oversized_arguments(codec: Codec) -> None:
    with pytest.raises(CloudException, match="Excessive data") as info:
        fresh(limit=1000).arguments((b"x" * 2000,))
    assert type(info.value) is CloudException
    assert "arguments" in str(info.value)
    assert "1000" in str(info.value)


def test_arguments_at_the_limit_are_accepted() -> None:
    raw_size = len(cloudpickle.dumps(((b"x" * 100,),), protocol=5))
    exact = fresh(limit=raw_size)
    assert exact.load_arguments(exact.arguments((b"x" * 100,))) == ((b"x" * 100,), {})
    with pytest.raises(CloudException, match="Excessive data"):
        fresh(limit=raw_size - 1).arguments((b"x" * 100,))


def test_unpicklable_argument_is_named(codec: Codec) -> None:
    lock = threading.Lock()
    with pytest.raises(CloudPicklingError) as info:
        codec.arguments((0, [lock]))
    message = str(info.value)
    assert "argument 1" in message
    assert "lock" in message
    assert repr(lock) in message  # the innermost culprit, not only the list
    assert PICKLE_HINT in message


def test_unpicklable_keyword_argument_is_named(codec: Codec) -> None:
    with pytest.raises(CloudPicklingError, match="keyword argument 'handle'"):
        codec.arguments((1,), {"handle": {"inner": threading.Lock()}})


# -- results -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, "text", [1, {"a": (2, 3)}], b"\0" * 10])
def test_result_round_trip(codec: Codec, value: object) -> None:
    assert fresh().load(codec.result(value)) == value


def test_lambda_result_with_cloudpickle(codec: Codec) -> None:
    assert codec.load(codec.result(lambda: 42))() == 42


def test_fast_serialization_2_uses_plain_pickle(codec: Codec) -> None:
    blob = codec.result({"k": [1, 2]}, fast=2)
    payload = bytes(codec.signer.open(blob))
    assert pickle.loads(payload) == {"k": [1, 2]}
    assert payload == pickle.dumps({"k": [1, 2]}, protocol=5)
    with pytest.raises(CloudPicklingError, match="return value"):
        codec.result(lambda: 1, fast=2)


def test_fast_serialization_2_arguments_refuse_lambdas(codec: Codec) -> None:
    with pytest.raises(CloudPicklingError):
        codec.arguments((lambda: 1,), fast=2)
    assert codec.load_arguments(codec.arguments((lambda: 1,), fast=1))[0][0]() == 1


def test_oversized_result() -> None:
    with pytest.raises(CloudException, match="Excessive data") as info:
        fresh(limit=500).result("y" * 1000)
    assert "result" in str(info.value)


def test_unpicklable_result(codec: Codec) -> None:
    with pytest.raises(CloudPicklingError, match="return value"):
        codec.result({"lock": threading.Lock()})


def test_tampered_result_is_refused(codec: Codec) -> None:
    blob = bytearray(codec.result("fine"))
    blob[-1] ^= 0xFF
    with pytest.raises(AuthenticityError, match="result"):
        codec.load(bytes(blob))


def test_unsigned_pickle_is_never_loaded(codec: Codec) -> None:
    with pytest.raises(AuthenticityError):
        codec.load(pickle.dumps("evil"), "exception")
    with pytest.raises(AuthenticityError):
        codec.load_arguments(pickle.dumps(((1,),)))


def test_what_the_job_store_would_keep_is_capped_below_max_transmit_data() -> None:
    """max_transmit_data may exceed what Redis holds; where nothing offloads to S3 (the
    simulator, isolated clients), a blob over the store's ceiling is refused up front."""
    codec = fresh(limit=2 * STORE_BLOB_CEILING)
    big = b"x" * (STORE_BLOB_CEILING + 1024)
    with pytest.raises(CloudException, match="S3 offload needs a team cluster") as info:
        codec.arguments((big,))
    assert str(STORE_BLOB_CEILING) in str(info.value)
    with pytest.raises(CloudException, match="the job store holds at most"):
        codec.result(big)

    def holds_big() -> int:
        return len(big)

    with pytest.raises(CloudException, match="functions always are"):
        codec.function(holds_big)
