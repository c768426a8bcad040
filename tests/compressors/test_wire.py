"""Every compressor's messages round-trip through bytes; malformed bytes raise ValueError."""

import pytest
import torch

from robustfl import compressors as C
from robustfl.compressors.base import Message

HEADER_BITS = 8 * 256  # magic, shapes, per-row lengths, checksum: a few hundred bytes at most


def instances() -> list[C.Compressor]:
    return [
        C.Identity(),
        C.TopK(k=7),
        C.RandK(k=7),
        C.RandK(ratio=0.2, scaled=False, shared_seed=False),
        C.Sign(),
        C.QSGD(s=1),
        C.QSGD(s=16, coding="fixed"),
        C.TernGrad(),
    ]


@pytest.mark.parametrize("c", instances(), ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_through_bytes(c: C.Compressor, dtype: torch.dtype, rng: torch.Generator) -> None:
    x = torch.randn(3, 64, dtype=dtype, generator=rng)
    msg = c.compress(x, rng)
    direct = c.decompress(msg)
    assert direct.shape == x.shape and direct.dtype == dtype
    whole = Message.from_bytes(msg.to_bytes())
    assert torch.equal(c.decompress(whole), direct)
    for i in range(3):
        row = msg.row(i)
        data = row.to_bytes()
        assert 0 <= len(data) * 8 - row.bits <= HEADER_BITS
        assert torch.equal(c.decompress(Message.from_bytes(data)), direct[i : i + 1])


def test_one_dimensional_input_round_trips(rng: torch.Generator) -> None:
    c = C.QSGD(s=4)
    x = torch.randn(50, generator=rng)
    msg = c.compress(x, rng)
    out = c.decompress(Message.from_bytes(msg.to_bytes()))
    assert out.shape == (50,)
    assert torch.equal(out, c.decompress(msg))


@pytest.fixture
def payload(rng: torch.Generator) -> bytes:
    return C.QSGD(s=4).compress(torch.randn(40, generator=rng), rng).to_bytes()


def test_truncated_bytes_raise(payload: bytes) -> None:
    for cut in range(0, len(payload), 3):
        with pytest.raises(ValueError):
            Message.from_bytes(payload[:cut])


def test_corrupted_bytes_raise(payload: bytes) -> None:
    for pos in range(0, len(payload), 5):
        bad = bytearray(payload)
        bad[pos] ^= 0x5A
        with pytest.raises(ValueError):
            Message.from_bytes(bytes(bad))


def test_random_bytes_and_wrong_types_raise() -> None:
    gen = torch.Generator().manual_seed(0)
    for size in (0, 3, 50, 500):
        junk = bytes(torch.randint(0, 256, (size,), generator=gen, dtype=torch.uint8).tolist())
        with pytest.raises(ValueError):
            Message.from_bytes(junk)
    with pytest.raises(ValueError, match="needs bytes"):
        Message.from_bytes("RFLC")  # type: ignore[arg-type]


def test_decoding_with_the_wrong_compressor_raises(rng: torch.Generator) -> None:
    msg = C.Sign().compress(torch.randn(10), rng)
    with pytest.raises(ValueError, match="cannot decode"):
        C.QSGD().decompress(msg)


def test_well_formed_bytes_with_bad_content_raise(rng: torch.Generator) -> None:
    """A message that parses but holds an index outside range(d) is rejected by decompress."""
    msg = C.TopK(k=2).compress(torch.randn(8), rng)
    forged = Message(
        msg.compressor, 1, 4, msg.dtype, msg.fields, squeeze=True, params=msg.params
    )  # d shrunk to 4
    msg.fields["indices"] = C.Field(torch.tensor([[1, 7]]), msg.fields["indices"].codec)
    with pytest.raises(ValueError, match="outside range"):
        C.TopK(k=2).decompress(Message.from_bytes(forged.to_bytes()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_same_message_as_cpu_inputs() -> None:
    x = torch.randn(4, 300, generator=torch.Generator().manual_seed(0))
    for c in [
        *instances(),
        C.BlockSampling(k=9),
        C.ATOMO(budget=5.0),
        C.Compose(C.BlockSampling(k=9), C.QSGD(s=2)),
    ]:
        cpu = c.compress(x, torch.Generator().manual_seed(1))
        gpu = c.compress(x.cuda(), torch.Generator().manual_seed(1))
        assert gpu.bits == cpu.bits, c
        out = c.decompress(gpu)
        assert out.is_cuda
        torch.testing.assert_close(out.cpu(), c.decompress(cpu), rtol=1e-5, atol=1e-6)
        back = c.decompress(Message.from_bytes(gpu.to_bytes()))
        torch.testing.assert_close(back, c.decompress(cpu), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c", [C.Sign(), C.QSGD(s=2), C.QSGD(s=2, coding="fixed"), C.TernGrad()], ids=repr)
def test_codes_of_the_wrong_length_raise(c: C.Compressor, rng: torch.Generator) -> None:
    msg = c.compress(torch.randn(1, 12, generator=rng), rng)
    short = Message(msg.compressor, 1, 13, msg.dtype, msg.fields, params=msg.params)  # header claims d = 13
    with pytest.raises(ValueError, match="codes, expected 13"):
        c.decompress(Message.from_bytes(short.to_bytes()))


def test_non_finite_rows_do_not_break_compression(rng: torch.Generator) -> None:
    """A Byzantine row of inf/NaN must not crash the batch: finite rows decode as usual."""
    shapes = [(5, 4)]
    x = torch.randn(3, 20, generator=rng)
    x[1, 3], x[2, 5] = float("inf"), float("nan")
    for c in [
        *instances(),
        C.RandL(l=3),
        C.BlockSampling(k=3),
        C.Compose(C.BlockSampling(k=3), C.QSGD(s=4)),
        C.PowerSGD(rank=1, shapes=shapes),
        C.ATOMO(budget=3.0),
        C.ATOMO(budget=2.0, atoms="svd", shapes=shapes),
    ]:
        msg = c.compress(x, rng)
        out = c.decompress(Message.from_bytes(msg.to_bytes()))
        assert out.shape == x.shape, c
        assert bool(torch.isfinite(out[0]).all()), c


def _mutations(msg: Message):
    """Well-formed bytes with wrong content: a field dropped, shortened, lengthened, saturated, NaN."""
    from robustfl.compressors.codecs import EliasSparse, Float, UInt

    for key, f in msg.fields.items():

        def edit(fn, key=key, f=f):
            data = [fn(t) for t in f.data] if isinstance(f.data, list) else fn(f.data)
            return {**msg.fields, key: C.Field(data, f.codec, f.per_row)}

        yield {k: v for k, v in msg.fields.items() if k != key}
        yield edit(lambda t: t[..., :-1] if t.dim() and t.shape[-1] > 0 else t)
        yield edit(lambda t: torch.cat([t, t[..., :1]], -1) if t.dim() and t.shape[-1] > 0 else t)
        if isinstance(f.codec, UInt):
            yield edit(lambda t, b=f.codec.b: torch.full_like(t, (1 << b) - 1))
        if isinstance(f.codec, EliasSparse):
            yield edit(lambda t: t * 1000)
        if isinstance(f.codec, Float):
            yield edit(lambda t: torch.full_like(t, float("nan")))


def test_forged_messages_raise_value_error_or_decode_to_the_right_shape(rng: torch.Generator) -> None:
    shapes = [(5, 4), (5,)]
    x = torch.randn(2, 25, generator=rng)
    compressors = [
        *instances(),
        C.RandL(l=3),
        C.RandL(l=3, sign=True),
        C.BlockSampling(k=3),
        C.Compose(C.BlockSampling(k=3), C.QSGD(s=4)),
        C.PowerSGD(rank=1, shapes=shapes),
        C.ATOMO(budget=3.0),
        C.ATOMO(budget=2.0, atoms="svd", shapes=shapes),
    ]
    for c in compressors:
        row = c.compress(x, rng).row(1)
        forged = [
            Message(row.compressor, 1, 25, row.dtype, fields, params=row.params) for fields in _mutations(row)
        ]
        forged.append(
            Message(row.compressor, 2, 25, row.dtype, row.fields, params=row.params)
        )  # claims two rows
        for msg in forged:
            try:
                data = msg.to_bytes()
            except ValueError:
                continue  # e.g. a saturated value that no longer fits its width
            try:
                out = c.decompress(Message.from_bytes(data))
            except ValueError:
                continue
            assert out.shape == (msg.n, 25), c
