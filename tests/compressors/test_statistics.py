"""Unbiasedness and contractivity, checked statistically with a fixed seed (tolerance ~5 standard errors)."""

import pytest
import torch

from robustfl import compressors as C

DRAWS = 4000


def draws(c: C.Compressor, x: torch.Tensor, rng: torch.Generator, count: int = DRAWS) -> torch.Tensor:
    """``count`` independent reconstructions of ``x`` (one batch, one row per draw)."""
    return c(x.expand(count, -1).contiguous(), rng)


def assert_unbiased(samples: torch.Tensor, x: torch.Tensor) -> None:
    mean = samples.mean(dim=0)
    se = samples.std(dim=0) / samples.shape[0] ** 0.5
    z = (mean - x).abs() / se.clamp_min(1e-12)
    assert float(z.max()) < 5.0, f"max z-score {float(z.max()):.2f}"


@pytest.mark.parametrize(
    "c", [C.QSGD(s=1), C.QSGD(s=4), C.QSGD(s=2, coding="fixed"), C.TernGrad(), C.RandK(k=4)], ids=repr
)
def test_unbiased_compressors_average_to_x(c: C.Compressor, rng: torch.Generator) -> None:
    x = torch.randn(20, dtype=torch.float64, generator=rng)
    assert c.unbiased
    assert_unbiased(draws(c, x, rng, 2000 if isinstance(c, C.RandK) else DRAWS), x)


def test_biased_compressor_fails_the_unbiasedness_check(rng: torch.Generator) -> None:
    """The check can fail: unscaled RandK is biased (its mean is (k/d) x)."""
    x = torch.randn(20, dtype=torch.float64, generator=rng) + 3.0
    with pytest.raises(AssertionError):
        assert_unbiased(draws(C.RandK(k=4, scaled=False), x, rng, 2000), x)


@pytest.mark.parametrize(
    "c", [C.TopK(k=5), C.RandK(k=5, scaled=False), C.Sign(), C.Identity(), C.QSGD(s=8)], ids=repr
)
def test_contractive_compressors_meet_their_delta(c: C.Compressor, rng: torch.Generator) -> None:
    d = 40
    delta = c.delta(d)
    assert delta is not None and 0 < delta <= 1
    for _ in range(5):
        x = torch.randn(d, dtype=torch.float64, generator=rng) * torch.rand(
            d, generator=rng, dtype=torch.float64
        )
        err = ((draws(c, x, rng, 500) - x) ** 2).sum(dim=1)
        bound = (1 - delta) * float(x @ x)
        assert float(err.mean()) <= bound * 1.05 + 1e-12


@pytest.mark.parametrize("c", [C.QSGD(s=2), C.TernGrad(), C.RandK(k=10)], ids=repr)
def test_unbiased_variance_is_within_omega(c: C.Compressor, rng: torch.Generator) -> None:
    d = 40
    x = torch.randn(d, dtype=torch.float64, generator=rng)
    err = ((draws(c, x, rng, 1000) - x) ** 2).sum(dim=1).mean()
    omega = c.omega(d)
    assert omega is not None
    assert float(err) <= omega * float(x @ x) * 1.1


def test_topk_keeps_the_largest_entries() -> None:
    x = torch.tensor([[0.1, -5.0, 0.3, 2.0, -0.2]])
    assert torch.equal(C.TopK(k=2)(x), torch.tensor([[0.0, -5.0, 0.0, 2.0, 0.0]]))


def test_sign_is_the_scaled_sign() -> None:
    x = torch.tensor([1.0, -3.0, 0.0, 2.0])
    assert torch.equal(C.Sign()(x), torch.tensor([1.5, -1.5, 1.5, 1.5]))


def test_randomness_is_reproducible_from_the_generator() -> None:
    x = torch.randn(3, 30)
    for c in (C.QSGD(s=2), C.TernGrad(), C.RandK(k=3)):
        a = c(x, torch.Generator().manual_seed(7))
        b = c(x, torch.Generator().manual_seed(7))
        assert torch.equal(a, b)


@pytest.mark.parametrize("inner", [C.QSGD(s=2), C.TernGrad(), C.RandK(k=8), C.ATOMO(budget=6.0)], ids=repr)
def test_contractive_wrapper_meets_one_over_one_plus_omega(inner: C.Compressor, rng: torch.Generator) -> None:
    c = C.Contractive(inner)
    d = 40
    delta = c.delta(d)
    assert not c.unbiased and delta == pytest.approx(1 / (1 + inner.omega(d)))
    x = torch.randn(d, dtype=torch.float64, generator=rng) ** 3
    err = ((draws(c, x, rng, 1000) - x) ** 2).sum(dim=1).mean()
    assert float(err) <= (1 - delta) * float(x @ x) * 1.05
    same = (
        c.compress(x, torch.Generator().manual_seed(5)),
        inner.compress(x, torch.Generator().manual_seed(5)),
    )
    assert same[0].bits == same[1].bits  # the message is the inner one; only decoding shrinks
    torch.testing.assert_close(c.decompress(same[0]), inner.decompress(same[1]) / (1 + inner.omega(d)))
    with pytest.raises(ValueError, match="unbiased"):
        C.Contractive(C.TopK(k=2))
