import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import (
    AGGREGATORS,
    Bulyan,
    CenteredClipping,
    Clipping,
    Krum,
    Median,
    Pipeline,
    SignMajority,
)
from robustfl.aggregators._distances import pairwise_sq_distances
from robustfl.aggregators.krum import krum_scores
from robustfl.aggregators.sign import VOTE_BLOCK_NUMEL, votes


def bulyan_by_hand(x: torch.Tensor, f: int, paper: bool) -> torch.Tensor:
    n = x.shape[0]
    d2 = pairwise_sq_distances(x)  # shared with Bulyan so float near-ties break the same way
    left, chosen = list(range(n)), []
    while len(chosen) < n - 2 * f:
        sub = d2[left][:, left]
        s = krum_scores(sub, max(len(left) - f - (2 if paper else 1), 1))
        chosen.append(left.pop(int(s.argmin())))
    sel = x[chosen]
    beta = len(chosen) - 2 * f
    med = Median()(sel)
    out = []
    for j in range(x.shape[1]):
        col = sel[:, j]
        order = sorted(range(len(col)), key=lambda i: (abs(float(col[i] - med[j])), float(col[i])))
        out.append(col[order[:beta]].mean())
    return torch.stack(out)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2), st.integers(0, 2), st.integers(1, 5), st.integers(0, 2**31 - 1), st.booleans())
def test_bulyan_matches_definition(f: int, extra: int, d: int, seed: int, paper: bool) -> None:
    n = 4 * f + 3 + extra
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rule = Bulyan(f, neighbours="paper" if paper else "byzfl")
    assert torch.allclose(rule(x), bulyan_by_hand(x, f, paper))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e38, -1e6])
@pytest.mark.parametrize("neighbours", ["byzfl", "paper"])
@pytest.mark.parametrize("f", [1, 2])
def test_bulyan_bad_rows_stay_in_honest_box(bad: float, neighbours: str, f: int) -> None:
    g = torch.Generator().manual_seed(0)
    n = 4 * f + 3
    honest = torch.randn(n - f, 6, generator=g)
    for first in (True, False):  # bad rows at the lowest indices, where ties would send the pick
        x = torch.cat([torch.full((f, 6), bad), honest] if first else [honest, torch.full((f, 6), bad)])
        out = Bulyan(f, neighbours=neighbours)(x)  # type: ignore[arg-type]
        assert torch.isfinite(out).all()
        assert (out >= honest.min(0).values).all() and (out <= honest.max(0).values).all()


def test_bulyan_bound_and_identical_rows() -> None:
    with pytest.raises(ValueError, match=r"Bulyan needs n >= 4f \+ 3, got n=10, f=2"):
        Bulyan(f=2)(torch.zeros(10, 3))
    row = torch.randn(4)
    assert torch.allclose(Bulyan(f=1)(row.repeat(7, 1)), row)
    assert isinstance(AGGREGATORS.get("bulyan", f=1), Bulyan)


def test_sign_majority() -> None:
    x = torch.tensor([[1.0, -2.0, 0.0, float("nan")], [3.0, -1.0, 5.0, -1.0], [-1.0, 4.0, -5.0, -2.0]])
    assert torch.equal(SignMajority()(x), torch.tensor([1.0, -1.0, 0.0, -1.0]))
    assert SignMajority()(x.double()).dtype == torch.float64
    # a Byzantine minority cannot flip coordinates where the honest rows agree
    honest = torch.ones(5, 3)
    assert torch.equal(SignMajority()(torch.cat([honest, -1e38 * torch.ones(4, 3)])), torch.ones(3))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_sign_majority_definition_and_permutation(n: int, d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    out = SignMajority()(x)
    assert torch.equal(out, torch.sign(torch.sign(x).sum(0)))
    assert torch.equal(SignMajority()(x[torch.randperm(n, generator=g)]), out)


def test_pipeline_composes_and_resets() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g) * 10
    pipe = Pipeline(Clipping(c=1.0), Krum(f=1))
    assert torch.equal(pipe(x), Krum(f=1)(Clipping(c=1.0)(x)))
    assert pipe.breakdown == Krum.breakdown
    assert repr(pipe) == "Pipeline(Clipping(c=1.0, in_place=False), Krum(f=1, neighbours='byzfl'))"
    matrix = Pipeline(Clipping(c=1.0), Clipping(c=0.5))(x)
    assert matrix.shape == x.shape and (matrix.norm(dim=1) <= 0.5 + 1e-6).all()
    cc = CenteredClipping(tau=0.1)
    stateful = Pipeline(Clipping(c=1.0), cc)
    first = stateful(x)
    stateful(x)
    stateful.reset()
    assert torch.equal(stateful(x), first)


def test_pipeline_validation() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        Pipeline()
    with pytest.raises(ValueError, match=r"stage 0 \(Krum\) returns one vector"):
        Pipeline(Krum(f=1), Clipping())
    with pytest.raises(ValueError, match="stage 1 must be an aggregator"):
        Pipeline(Clipping(), "krum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Krum needs n > 2f, got n=2, f=1"):
        Pipeline(Clipping(), Krum(f=1))(torch.zeros(2, 3))


def test_small_inputs_run_on_one_thread_and_restore_the_count() -> None:
    from robustfl.aggregators._small import SMALL_NUMEL, OneThreadWhenSmall

    seen: list[int] = []

    class Probe(OneThreadWhenSmall):
        def _aggregate(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return x[0]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Probe()(torch.zeros(4, 8))
        Probe()(torch.zeros(1, SMALL_NUMEL))
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("d", [3, VOTE_BLOCK_NUMEL // 4 + 5], ids=["one-block", "blocked"])
def test_sign_votes_count_signs_with_nan_voting_nothing(d: int) -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(7, d, generator=gen)
    x[0, 0], x[1, 1], x[2, 2], x[3, 0] = float("nan"), float("inf"), -float("inf"), -0.0
    expected = ((x > 0).sum(dim=0) - (x < 0).sum(dim=0)).to(x.dtype)
    assert torch.equal(votes(x), expected)
    assert torch.equal(SignMajority()(x), torch.sign(expected))
