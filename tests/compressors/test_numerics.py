"""Finite rows decode to finite values (no overflow in norms and scales); half precision works for the
compressors that need a QR or an SVD."""

from __future__ import annotations

import pytest
import torch

from robustfl import compressors as C
from robustfl.compressors.base import Message
from robustfl.compressors.codecs import Float

HUGE = {torch.float16: 3e4, torch.bfloat16: 1e38, torch.float32: 1e38, torch.float64: 1e307}


@pytest.mark.parametrize("dtype", list(HUGE), ids=str)
@pytest.mark.parametrize(
    "c",
    [
        C.QSGD(s=4),
        C.QSGD(s=4, coding="fixed"),
        C.QSGD(s=1),
        C.Sign(),
        C.TernGrad(),
        C.Identity(),
        C.TopK(k=3),
    ],
    ids=repr,
)
def test_finite_rows_with_huge_entries_decode_to_finite_values(
    c: C.Compressor, dtype: torch.dtype, rng: torch.Generator
) -> None:
    x = torch.randn(4, 40, generator=rng, dtype=torch.float64)
    x[0, 3] = 1e20 if dtype not in (torch.float16,) else 6e4  # one huge entry: the norm overflowed
    x[1] = HUGE[dtype] * torch.sign(x[1])  # every entry huge: the norm itself exceeds the dtype
    x[2] = 1e-30 if dtype != torch.float16 else 1e-7  # tiny (denormal-range) entries
    x = x.to(dtype)
    assert torch.isfinite(x).all()
    for msg in (c.compress(x, rng), Message.from_bytes(c.compress(x, rng).to_bytes())):
        out = c.decompress(msg)
        assert out.dtype == dtype and torch.isfinite(out).all()


def test_qsgd_keeps_a_huge_entry_and_stays_unbiased_on_it(rng: torch.Generator) -> None:
    x = torch.zeros(1, 50)
    x[0, :10] = 1.0
    x[0, 7] = 1e20
    out = C.QSGD(s=4)(x, rng)
    assert out[0, 7].item() == pytest.approx(1e20, rel=1e-6)
    assert torch.isfinite(out).all()


def test_sign_scale_does_not_overflow_in_float32() -> None:
    x = torch.full((1, 1000), 3e38)
    out = C.Sign()(x)
    assert torch.isfinite(out).all() and out[0, 0].item() == pytest.approx(3e38, rel=1e-6)


SHAPES = [(6, 5), (6,)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "make",
    [lambda: C.PowerSGD(rank=2, shapes=SHAPES), lambda: C.ATOMO(budget=3.0, atoms="svd", shapes=SHAPES)],
    ids=["powersgd", "atomo-svd"],
)
def test_half_precision_low_rank_compressors_work(make: object, dtype: torch.dtype) -> None:
    x = torch.randn(3, 36, generator=torch.Generator().manual_seed(0))
    half = make()  # type: ignore[operator]
    full = make()  # type: ignore[operator]
    msg = half.compress(x.to(dtype), torch.Generator().manual_seed(1))
    out = half.decompress(Message.from_bytes(msg.to_bytes()))
    assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
    floats = [f.codec for f in msg.fields.values() if isinstance(f.codec, Float)]
    assert floats and all(codec.dtype == dtype for codec in floats)  # sent at 16 bits per value
    # the same maths as in float32, up to the rounding of the inputs and of the sent values
    ref = full.decompress(full.compress(x.to(dtype).float(), torch.Generator().manual_seed(1)))
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05 * float(ref.abs().max()))
