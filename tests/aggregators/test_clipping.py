import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import AGGREGATORS, CenteredClipping, Clipping, PreAggregator

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_centered_clipping_reference_vector(dtype: torch.dtype) -> None:
    assert torch.allclose(CenteredClipping()(X.to(dtype)), torch.tensor([4.0, 5.0, 6.0], dtype=dtype))


def test_centered_clipping_step_by_hand_and_memory() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64) * 4
    cc = CenteredClipping(L=2, tau=1.5)
    v = torch.zeros(5, dtype=torch.float64)
    for _ in range(2):
        for _ in range(2):
            u = x - v
            v = v + (u * torch.clamp(1.5 / u.norm(dim=1), max=1.0)[:, None]).mean(0)
        assert torch.allclose(cc(x), v)  # second call starts from the first call's output
    cc.reset()
    first = cc(x)
    assert not torch.allclose(first, v)
    m = torch.ones(5, dtype=torch.float64)
    cc_m = CenteredClipping(m=m, tau=0.0)
    assert torch.equal(cc_m(x), m)
    cc_m.reset()
    assert torch.equal(cc_m.center, m)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e38, -1e6])
def test_centered_clipping_bad_rows_move_it_by_at_most_tau_over_n(bad: float) -> None:
    g = torch.Generator().manual_seed(1)
    honest = torch.randn(5, 8, generator=g)
    x = torch.cat([honest, torch.full((2, 8), bad)])
    tau = 0.5
    out = CenteredClipping(tau=tau)(x)
    clean = CenteredClipping(tau=tau)(honest) * 5 / 7  # the honest rows' clipped sum over n = 7
    assert torch.isfinite(out).all()
    assert (out - clean).norm() <= 2 * tau / 7 + 1e-5


def test_centered_clipping_errors() -> None:
    with pytest.raises(ValueError, match="m must be None or a finite 1-D"):
        CenteredClipping(m=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="L must be >= 1"):
        CenteredClipping(L=0)
    with pytest.raises(ValueError, match="tau must be >= 0"):
        CenteredClipping(tau=-1.0)
    cc = CenteredClipping()
    cc(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="centre has d=4 but the messages have d=5.*reset"):
        cc(torch.zeros(3, 5))
    cc.reset()
    assert cc(torch.ones(3, 5)).shape == (5,)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1), st.floats(0.01, 10))
def test_clipping_bounds_norms_and_keeps_directions(n: int, d: int, seed: int, c: float) -> None:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    out = Clipping(c)(x)
    assert out.shape == x.shape
    norms = x.norm(dim=1)
    assert (out.norm(dim=1) <= c * (1 + 1e-9)).all()
    small = norms <= c
    assert torch.equal(out[small], x[small])
    cos = torch.nn.functional.cosine_similarity(out[~small], x[~small], dim=1)
    assert torch.allclose(cos, torch.ones_like(cos))


def test_clipping_bad_rows() -> None:
    x = torch.tensor([[3.0, 4.0], [float("nan"), 1.0], [float("inf"), 0.0], [1e38, 1e38]])
    out = Clipping(1.0)(x)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(out[1:3], torch.zeros(2, 2))
    assert torch.allclose(out[3], torch.tensor([0.70710678, 0.70710678]))


def test_clipping_contract() -> None:
    assert isinstance(Clipping(), PreAggregator)
    assert Clipping().c == 2.0
    with pytest.raises(ValueError, match="c must be > 0"):
        Clipping(c=0.0)
    assert isinstance(AGGREGATORS.get("cc", tau=1.0), CenteredClipping)
