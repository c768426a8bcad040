import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import ARC


def brute_arc(x: torch.Tensor, f: int) -> torch.Tensor:
    n = x.shape[0]
    k = math.floor(2 * f * (n - f) / n)
    norms = [math.sqrt(sum(v * v for v in row.tolist())) for row in x]
    order = sorted(range(n), key=lambda i: norms[i])
    out = x.clone()
    if k == 0:
        return out
    tau = norms[order[n - k - 1]]
    for i in order[n - k :]:
        if norms[i] > tau:
            out[i] = x[i] * (tau / norms[i])
    return out


def test_byzfl_example() -> None:
    x = torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=torch.float64)
    out = ARC(f=1)(x)
    scale = math.sqrt(16 + 25 + 36) / math.sqrt(49 + 64 + 81)
    assert torch.allclose(out, torch.cat([x[:2], x[2:] * scale]))
    assert torch.allclose(out[2], torch.tensor([4.41004009, 5.04004582, 5.67005155], dtype=torch.float64))


@pytest.mark.parametrize(("n", "f"), [(4, 1), (7, 2), (10, 3), (6, 0), (5, 5)])
def test_matches_brute_force(n: int, f: int) -> None:
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(n + f), dtype=torch.float64) * torch.arange(
        1, n + 1, dtype=torch.float64
    ).unsqueeze(1)
    assert torch.allclose(ARC(f)(x), brute_arc(x, f))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(2, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    bad=st.sampled_from(["nan", "inf", "big"]),
)
def test_bad_rows_are_clipped_to_honest_norms(n: int, d: int, seed: int, bad: str) -> None:
    f = n // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    if f:
        x[-f:] = {"nan": math.nan, "inf": -math.inf, "big": 1e38}[bad]
    out = ARC(f)(x)
    assert torch.isfinite(out).all()
    honest_max = torch.linalg.vector_norm(x[: n - f], dim=1).max()
    assert (torch.linalg.vector_norm(out, dim=1) <= honest_max * (1 + 1e-5)).all()


def test_validation() -> None:
    with pytest.raises(ValueError, match="f must be >= 0"):
        ARC(f=-2)
    with pytest.raises(ValueError, match=r"n >= f, got n=2, f=3"):
        ARC(f=3)(torch.ones(2, 2))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 8), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_permutation_equivariant_and_never_writes_its_input(n: int, d: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    before = x.clone()
    perm = torch.randperm(n, generator=gen)
    f = n // 2
    assert torch.allclose(ARC(f)(x[perm]), ARC(f)(x)[perm])
    assert torch.equal(x, before)
