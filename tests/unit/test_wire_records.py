"""Store records on the remote protocol (`store.remote.wire`): every record comes back
equal, and peers a version apart (a record with fewer or more fields) still understand
each other, while a record missing a field without a default is refused."""

from __future__ import annotations

import msgpack
import pytest

from picloud_compat.store.records import ChunkRef, QueueService, WorkerInfo
from picloud_compat.store.remote import wire


def test_records_round_trip() -> None:
    records = [
        ChunkRef("acme", 7, 3),
        QueueService(4, ("py3.11/cp3.1",), 2, ("acme:words",)),
        WorkerInfo("w@h", ("c1", "c2"), 2, 1.5, "rt", 1, ("acme:words",)),
    ]
    assert wire.unpack(wire.pack(records)) == records


def _as_sent(record: object, values: list[object]) -> bytes:
    code = wire.RECORDS.index(type(record))
    return msgpack.packb(msgpack.ExtType(code, wire.pack(values)), use_bin_type=True)


def test_an_older_peer_sends_fewer_fields_and_a_newer_one_more() -> None:
    older = _as_sent(QueueService(0), [4, ["rt"], 2])  # before `environments`
    assert wire.unpack(older) == QueueService(4, ("rt",), 2, ())
    newer = _as_sent(QueueService(0), [4, ["rt"], 2, ["acme:words"], "a field to come"])
    assert wire.unpack(newer) == QueueService(4, ("rt",), 2, ("acme:words",))


def test_a_record_missing_a_required_field_is_refused() -> None:
    with pytest.raises(wire.WireError, match="malformed ChunkRef"):
        wire.unpack(_as_sent(ChunkRef("t", 1, 1), ["acme", 7]))
