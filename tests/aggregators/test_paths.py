"""Code paths chosen by n (issue 19): the same results on either side of every threshold.

Order statistics are exact values, so every path must return them bit for bit; rules built on them
(Median, TrimmedMean, Meamed, Bulyan) are compared with their sort-based definitions.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustfl.aggregators import Median, TrimmedMean
from robustfl.aggregators import coordinatewise as cw
from robustfl.aggregators.coordinatewise import NETWORK_MAX_N, order_statistics

AROUND = [NETWORK_MAX_N - 1, NETWORK_MAX_N, NETWORK_MAX_N + 1, NETWORK_MAX_N + 2]


def sorted_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), float("inf"), x).sort(dim=0).values


def messy(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Small integers (many ties), a few NaN and +-Inf entries."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-4, 5, (n, d), generator=g).to(dtype)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
    mask = torch.rand(n, d, generator=g) < 0.03
    x[mask] = specials[torch.randint(0, 3, (int(mask.sum()),), generator=g)]
    return x


@settings(max_examples=12, deadline=None)
@given(
    st.sampled_from([*AROUND, 2 * NETWORK_MAX_N + 1]),
    st.integers(1, 40),
    st.integers(0, 2**31 - 1),
    st.data(),
)
def test_order_statistics_are_exact_on_both_sides_of_the_threshold(
    n: int, d: int, seed: int, data: st.DataObject
) -> None:
    x = messy(n, d, seed)
    ref = sorted_reference(x)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    assert torch.equal(order_statistics(x, lo, hi), ref[lo:hi])
    mid = order_statistics(x, (n - 1) // 2, n // 2 + 1)  # the selection path above the threshold
    assert torch.equal(mid, ref[(n - 1) // 2 : n // 2 + 1])


@pytest.mark.parametrize("n", AROUND)
def test_median_is_bit_identical_across_the_switch(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(n, 300, generator=torch.Generator().manual_seed(n))
    x[0, :5] = float("nan")
    here = Median()(x)
    # force the other path for the same n: network <-> selection
    monkeypatch.setattr(cw, "NETWORK_MAX_N", n - 1 if n <= NETWORK_MAX_N else n)
    assert torch.equal(Median()(x), here)


@pytest.mark.parametrize("n", AROUND)
def test_trimmed_mean_matches_definition_across_the_switch(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(n, 200, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    f = n // 4
    expected = x.sort(dim=0).values[f : n - f].mean(0)
    assert torch.allclose(TrimmedMean(f)(x), expected, rtol=0, atol=1e-12)
    monkeypatch.setattr(cw, "NETWORK_MAX_N", n - 1 if n <= NETWORK_MAX_N else n)
    assert torch.allclose(TrimmedMean(f)(x), expected, rtol=0, atol=1e-12)


def test_blocks_cover_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    n = NETWORK_MAX_N + 6
    monkeypatch.setattr(cw, "BLOCK_NUMEL", 3 * n)  # 3 columns per block, 10 columns
    x = messy(n, 10, 1)
    ref = sorted_reference(x)
    assert torch.equal(order_statistics(x, 3, 9), ref[3:9])
    lo, hi = (n - 1) // 2, n // 2 + 1
    assert hi - lo == 2
    assert torch.equal(order_statistics(x, lo, hi), ref[lo:hi])


def iterated_krum_by_resorting(dist: torch.Tensor, f: int, theta: int, neighbours: str) -> torch.Tensor:
    """The definition: re-sort the remaining submatrix at every step (the code before issue 19)."""
    from robustfl.aggregators.krum import krum_scores, neighbour_count

    remaining = torch.arange(dist.shape[0])
    chosen = []
    for _ in range(theta):
        sub = dist.index_select(0, remaining).index_select(1, remaining)
        r = remaining.numel()
        scores = krum_scores(sub, max(neighbour_count(r, f, neighbours), min(1, r - 1)))  # type: ignore[arg-type]
        pick = int(torch.argmin(scores))
        chosen.append(remaining[pick])
        remaining = torch.cat([remaining[:pick], remaining[pick + 1 :]])
    return torch.stack(chosen)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(3, 40),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["byzfl", "paper"]),
    st.booleans(),
)
def test_iterated_krum_picks_what_resorting_picks(n: int, seed: int, neighbours: str, ties: bool) -> None:
    from robustfl.aggregators._distances import pairwise_sq_distances
    from robustfl.aggregators.bulyan import iterated_krum

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 3), generator=g).double() if ties else torch.randn(n, 5, generator=g)
    if n > 4:
        x[1] = float("nan")
    dist = pairwise_sq_distances(x)
    f = (n - 3) // 4
    theta = n - 2 * f
    got = iterated_krum(dist, f, theta, neighbours)  # type: ignore[arg-type]
    assert torch.equal(got, iterated_krum_by_resorting(dist, f, theta, neighbours))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 30), st.integers(1, 50), st.integers(0, 2**31 - 1), st.booleans())
def test_arc_changes_only_clipped_rows_and_matches_its_formula(n: int, d: int, seed: int, bad: bool) -> None:
    from robustfl.aggregators import ARC

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 10
    f = n // 3
    k = (2 * f * (n - f)) // n
    out = ARC(f)(x)
    if k == 0:
        assert torch.equal(out, x)
        return
    norms = torch.linalg.vector_norm(x, dim=1)
    tau = norms.kthvalue(n - k).values
    assert torch.equal(out, x * torch.where(norms > tau, tau / norms, 1.0).unsqueeze(1))


@pytest.mark.parametrize("d", [10, 3000])
def test_monna_blocks_give_the_distances_of_one_pass(d: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustfl.aggregators import monna

    x = torch.randn(40, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    whole = torch.linalg.vector_norm(x - x[3], dim=1)
    monkeypatch.setattr(monna, "BLOCK_NUMEL", 40 * 7)  # 7 columns per block
    assert torch.allclose(monna.distances_to_row(x, x[3]), whole, rtol=1e-12, atol=0)
