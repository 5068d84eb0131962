from __future__ import annotations

import pytest

from picloud_compat import signing
from picloud_compat.errors import AuthenticityError, CloudException, CloudPicklingError
from picloud_compat.signing import MAGIC, Signer

SECRET = "unit-test-secret-" + "x" * 16
PAYLOAD = b"\x80\x05some pickle bytes"


@pytest.fixture
def signer() -> Signer:
    return Signer(SECRET, "tenant-a")


def test_round_trip(signer: Signer) -> None:
    blob = signer.seal(PAYLOAD)
    assert blob.startswith(MAGIC)
    opened = signer.open(blob)
    assert isinstance(opened, memoryview)
    assert bytes(opened) == PAYLOAD


def test_round_trip_from_memoryview_and_empty_payload(signer: Signer) -> None:
    assert bytes(signer.open(memoryview(signer.seal(PAYLOAD)))) == PAYLOAD
    assert bytes(signer.open(signer.seal(b""))) == b""


def test_bytes_secret_equals_str_secret() -> None:
    blob = Signer(SECRET, "t").seal(PAYLOAD)
    assert bytes(Signer(SECRET.encode(), "t").open(blob)) == PAYLOAD


def test_seal_is_deterministic(signer: Signer) -> None:
    assert signer.seal(PAYLOAD) == signer.seal(PAYLOAD)


@pytest.mark.parametrize("offset", [-1, -len(PAYLOAD), len(MAGIC), len(MAGIC) + 15])
def test_flipped_byte_is_refused(signer: Signer, offset: int) -> None:
    """Offsets hit the payload's last and first byte and the MAC's first and last byte."""
    blob = bytearray(signer.seal(PAYLOAD))
    blob[offset] ^= 0x01
    with pytest.raises(AuthenticityError, match="signature does not match"):
        signer.open(bytes(blob))


def test_flipped_header_byte_is_refused(signer: Signer) -> None:
    blob = bytearray(signer.seal(PAYLOAD))
    blob[len(MAGIC) + 16 + 1] ^= 0x01  # first byte of the runtime header
    with pytest.raises(AuthenticityError):
        signer.open(bytes(blob))


def test_truncated_blob_is_refused(signer: Signer) -> None:
    blob = signer.seal(PAYLOAD)
    with pytest.raises(AuthenticityError):
        signer.open(blob[:-1])


@pytest.mark.parametrize(
    "blob",
    [b"", b"PCS1", b"PCS2", PAYLOAD, b"XXXX" + b"\0" * 64, b"\x80\x05\x95" + b"\0" * 80],
)
def test_blob_without_magic_is_refused(signer: Signer, blob: bytes) -> None:
    with pytest.raises(AuthenticityError, match="carries no signature") as info:
        signer.open(blob, "arguments")
    assert "arguments" in str(info.value)


def test_other_tenant_cannot_open() -> None:
    blob = Signer(SECRET, "a").seal(PAYLOAD)
    with pytest.raises(AuthenticityError):
        Signer(SECRET, "b").open(blob)


def test_other_secret_cannot_open() -> None:
    blob = Signer(SECRET, "a").seal(PAYLOAD)
    with pytest.raises(AuthenticityError):
        Signer(SECRET + "!", "a").open(blob)


def test_authenticity_error_is_a_cloud_exception(signer: Signer) -> None:
    with pytest.raises(CloudException):
        signer.open(b"nope")


@pytest.mark.parametrize("secret", ["", "short", "x" * 15, b"y" * 15])
def test_short_secret_is_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(secret, "t")


def test_sixteen_byte_secret_is_enough() -> None:
    assert Signer("k" * 16, "t").tenant == "t"


def test_other_runtime_header_is_a_pickling_error(
    signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correctly signed blob from another Python/cloudpickle version is not unpickled."""
    with monkeypatch.context() as patch:
        patch.setattr(signing, "_HEADER", bytes([13]) + b"py2.7|cp0.5.2")
        forged = signer.seal(PAYLOAD)
    with pytest.raises(CloudPicklingError) as info:
        signer.open(forged, "function")
    message = str(info.value)
    assert "function" in message
    assert "py2.7|cp0.5.2" in message
    assert signing._RUNTIME.decode() in message


def test_blobs_sealed_with_the_full_mac_before_still_open(signer: Signer) -> None:
    """Stores written by the previous version (``PCS1``, a 32-byte MAC) stay readable,
    and their MAC is checked in full."""
    import hmac

    body = signer.seal(PAYLOAD)[len(MAGIC) + 16 :]
    key = signing.tenant_key(SECRET, "tenant-a")
    legacy = b"PCS1" + hmac.digest(key, body, "sha256") + body
    assert bytes(signer.open(legacy)) == PAYLOAD
    short = b"PCS1" + hmac.digest(key, body, "sha256")[:16] + body
    with pytest.raises(AuthenticityError):
        signer.open(short)


def test_a_small_jobs_arguments_stay_under_redis_compact_limit(signer: Signer) -> None:
    """64 bytes is Redis's hash-max-listpack-value: above it a job record takes ~1.2 KB."""
    import pickle

    assert len(signer.seal(pickle.dumps(((5,),), protocol=5))) <= 64


@pytest.mark.parametrize("key_len", [16, 32, 64, 65, 200])
@pytest.mark.parametrize("msg", [b"", b"x", bytes(range(256)) * 9])
def test_precomputed_mac_is_standard_hmac_sha256(key_len: int, msg: bytes) -> None:
    """The envelope's MAC is RFC 2104 HMAC-SHA256, whatever the key's length: blobs
    sealed before the precomputation (and by any other implementation) still open."""
    import hashlib
    import hmac

    key = bytes((7 * i + 3) % 256 for i in range(key_len))
    mac = signing._HmacSha256(key)
    assert mac.digest(msg) == hmac.digest(key, msg, hashlib.sha256)
    assert mac.digest(memoryview(b"??" + msg)[2:]) == hmac.digest(key, msg, hashlib.sha256)


def test_seal_matches_a_plain_hmac_envelope() -> None:
    key = signing.tenant_key(SECRET, "t")
    body = signing._HEADER + PAYLOAD
    import hmac

    expected = MAGIC + hmac.digest(key, body, "sha256")[:16] + body
    assert Signer(SECRET, "t").seal(PAYLOAD) == expected
    assert Signer.from_tenant_key(key, "t").seal(PAYLOAD) == expected
