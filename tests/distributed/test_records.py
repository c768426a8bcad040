"""The runtime's record format and client assignment (no processes)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustfl.distributed import wire
from robustfl.distributed.assignment import contiguous


def test_records_round_trip_tensors_exactly() -> None:
    tensors = {"params": torch.randn(7), "c": torch.arange(6, dtype=torch.int64).reshape(2, 3)}
    specs, blobs = wire.encode_tensors(tensors)
    meta, got = wire.unpack(wire.pack({"round": 3, "tensors": specs}, blobs))
    assert meta["round"] == 3
    back = wire.decode_tensors(meta["tensors"], got)
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


def test_tensor_bytes_are_the_values_at_their_width() -> None:
    assert len(wire.tensor_bytes(torch.zeros(10))) == 40
    assert len(wire.tensor_bytes(torch.zeros(10, dtype=torch.float16))) == 20


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RFLR",
        b"XXXX\x00\x00\x00\x00",
        wire.pack({"round": 1}, [b"abc"])[:-1],
        b"RFLR\x05\x00\x00\x00{bad}",
    ],
)
def test_malformed_records_raise_wire_error(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.unpack(data)


def test_a_blob_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(wire.WireError, match="cannot hold"):
        wire.tensor_from(b"\x00" * 10, "float32", [3])
    with pytest.raises(wire.WireError, match="unknown dtype"):
        wire.tensor_from(b"", "object", [0])


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_error(data: bytes) -> None:
    try:
        meta, blobs = wire.unpack(data)
    except wire.WireError:
        return
    assert isinstance(meta, dict) and isinstance(blobs, list)


@given(st.binary(max_size=64), st.integers(0, 40))
def test_corrupting_a_valid_record_is_caught_or_harmless(noise: bytes, at: int) -> None:
    record = bytearray(wire.pack({"round": 2, "clients": [1, 2]}, [b"\x01" * 12]))
    record[at : at + len(noise)] = noise
    with contextlib.suppress(wire.WireError):
        wire.unpack(bytes(record))


def test_contiguous_shares_cover_every_client_once() -> None:
    shares = contiguous(10, 3)
    assert sorted(shares) == [1, 2, 3]
    assert torch.equal(torch.cat(list(shares.values())), torch.arange(10))
    assert max(len(s) for s in shares.values()) - min(len(s) for s in shares.values()) <= 1


def test_replicated_shares_give_each_client_to_r_ranks() -> None:
    shares = contiguous(6, 3, replicas=2)
    counts = torch.bincount(torch.cat(list(shares.values())), minlength=6)
    assert counts.tolist() == [2] * 6


def test_assignment_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="--nproc"):
        contiguous(2, 5)
    with pytest.raises(ValueError, match="workers.replicas"):
        contiguous(6, 3, replicas=4)
