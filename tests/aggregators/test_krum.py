import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import AGGREGATORS, Krum, MultiKrum
from robustfl.aggregators._distances import pairwise_sq_distances

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def scores_by_hand(x: torch.Tensor, k: int) -> torch.Tensor:
    n = x.shape[0]
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return torch.stack([d2[i][torch.arange(n) != i].sort().values[:k].sum() for i in range(n)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_vectors(dtype: torch.dtype) -> None:
    x = X.to(dtype)
    assert torch.equal(Krum(f=1)(x), torch.tensor([1.0, 2.0, 3.0], dtype=dtype))
    assert torch.equal(MultiKrum(f=1)(x), torch.tensor([2.5, 3.5, 4.5], dtype=dtype))
    assert torch.equal(MultiKrum(f=1, m=1)(x), Krum(f=1)(x))


@settings(max_examples=50, deadline=None)
@given(st.integers(3, 9), st.integers(1, 5), st.integers(0, 2**31 - 1), st.sampled_from(["byzfl", "paper"]))
def test_selection_matches_definition(n: int, d: int, seed: int, neighbours: str) -> None:
    f = (n - 3) // 2 if neighbours == "paper" else (n - 1) // 2
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    k = n - f - (1 if neighbours == "byzfl" else 2)
    s = scores_by_hand(x, k)
    out = Krum(f=f, neighbours=neighbours)(x)  # type: ignore[arg-type]
    assert torch.equal(out, x[int(s.argmin())])
    m = max(1, n - f - 1)
    multi = MultiKrum(f=f, m=m, neighbours=neighbours)(x)  # type: ignore[arg-type]
    assert torch.allclose(multi, x[s.argsort()[:m]].mean(0))
    # permuting the rows can only change which of several equal-score rows is picked
    perm = torch.randperm(n, generator=g)
    permuted = Krum(f=f, neighbours=neighbours)(x[perm])  # type: ignore[arg-type]
    best = (s <= s.min() * (1 + 1e-12)).nonzero().squeeze(1)
    assert any(torch.equal(permuted, x[i]) for i in best)


def test_ties_go_to_the_lowest_index() -> None:
    x = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    assert torch.equal(Krum(f=1)(x), torch.tensor([0.0]))
    x = torch.tensor([[5.0], [1.0], [1.0], [1.0], [5.0]])
    assert torch.equal(MultiKrum(f=1, m=2)(x), torch.tensor([1.0]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e38, 1e6, -1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_rows_never_chosen(bad: float, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    n, f = 9, 3
    honest = torch.randn(n - f, 8, generator=g, dtype=dtype)
    x = torch.cat([torch.full((f, 8), bad, dtype=dtype), honest])[torch.randperm(n, generator=g)]
    lo, hi = honest.min(0).values, honest.max(0).values
    for rule in (Krum(f), MultiKrum(f), Krum(f, neighbours="paper")):
        out = rule(x)
        assert torch.isfinite(out).all() and (out >= lo).all() and (out <= hi).all()


def test_float32_fast_path_agrees_with_float64() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 300, generator=g)
    d32 = pairwise_sq_distances(x)
    d64 = pairwise_sq_distances(x.double())
    assert d32.dtype == torch.float64
    assert torch.allclose(d32, d64, rtol=1e-5, atol=1e-3)
    x[3, 0] = float("nan")
    x[5, 1] = 1e38
    d = pairwise_sq_distances(x)
    assert torch.isinf(d[3]).sum() == 11 and d[3, 3] == 0
    assert torch.isfinite(d[5, [0, 1, 2, 4]]).all() and d[5, 0] > 1e75 and torch.isinf(d[5, 3])


def test_identical_rows_give_that_row() -> None:
    row = torch.randn(4)
    assert torch.equal(Krum(f=1)(row.repeat(5, 1)), row)
    assert torch.allclose(MultiKrum(f=1)(row.repeat(5, 1)), row)


def test_bounds_and_validation() -> None:
    with pytest.raises(ValueError, match=r"Krum needs n > 2f, got n=4, f=2"):
        Krum(f=2)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"Krum needs n > 2f \+ 2, got n=4, f=1"):
        Krum(f=1, neighbours="paper")(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"MultiKrum needs n > 2f, got n=2, f=1"):
        MultiKrum(f=1)(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="m=6 rows but got only n=5"):
        MultiKrum(f=1, m=6)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="m must be >= 1"):
        MultiKrum(m=0)
    with pytest.raises(ValueError, match="neighbours must be"):
        Krum(f=1, neighbours="blanchard")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="f must be >= 0"):
        Krum(f=-1)
    assert isinstance(AGGREGATORS.get("multikrum", f=1, m=2), MultiKrum)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 8), st.integers(1, 4), st.integers(0, 2**31 - 1), st.floats(-100, 100))
def test_translation_equivariance(n: int, d: int, seed: int, shift: float) -> None:
    f = (n - 1) // 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s = scores_by_hand(x, n - f - 1)
    moved = Krum(f)(x + shift) - shift
    # the pick after translating is a best-scoring row of the original (up to round-off in near-ties)
    chosen = int(((x - moved) ** 2).sum(1).argmin())
    assert s[chosen] <= s.min() + 1e-6 * (1 + shift**2)
